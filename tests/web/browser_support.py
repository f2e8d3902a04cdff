"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) through Selenium, and a fake GV50 device.

``find_browser()`` returns the paths or the reason they cannot be used, so a test can skip
with that reason printed. Selenium calls block: call them in a thread (``deferToThread``)
so the reactor keeps serving the page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
# Tiles from a port nothing listens on: the map has a blank background, markers still show.
NO_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"


def find_browser() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` or why the browser tests cannot run."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the test extra)"
    chromium = next((p for p in CHROMIUM if os.access(p, os.X_OK)), None) or shutil.which("chromium")
    driver = next((p for p in CHROMEDRIVER if os.access(p, os.X_OK)), None) or shutil.which("chromedriver")
    if chromium is None:
        return "chromium not found (apt-get install chromium chromium-driver)"
    if driver is None:
        return "chromedriver not found (apt-get install chromium-driver)"
    return chromium, driver


class Browser:
    """A headless Chromium with a fresh profile; ``quit()`` removes the profile."""

    def __init__(self, chromium: str, chromedriver: str, width: int = 1280, height: int = 800) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="waygps-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        self.driver.set_page_load_timeout(60)

    def wait_for(self, script: str, timeout: float = 60.0) -> Any:
        """Poll the page until ``script`` (a JS expression) is truthy; return its value."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
                lambda d: d.execute_script(f"return ({script});"))
        except TimeoutException:
            raise AssertionError(f"page never satisfied: {script}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        """What the page logged and what it thinks, for a failure message."""
        lines = []
        try:
            lines.append(f"state: {self.driver.execute_script('return window.WayGPS && WayGPS.state;')}")
            for entry in self.driver.get_log("browser"):
                lines.append(f"console {entry.get('level')}: {entry.get('message')}")
        except Exception as e:  # the diagnosis must not hide the failure
            lines.append(f"(no diagnosis: {e})")
        return "\n".join(lines)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def gtfri(imei: str, lat: float, lon: float, when: datetime, count: int, speed: float = 20.0,
          course: int = 147, buffered: bool = False, ignition: bool = True, battery: int = 87) -> bytes:
    """A GV50 ``GTFRI`` position report (the layout of the protocol document's first sample).

    The device status ``22....`` says ignition on, ``12....`` off.
    """
    head = "+BUFF" if buffered else "+RESP"
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")
    return (f"{head}:GTFRI,060228,{imei},,,10,1,1,{speed:.1f},{course},329.7,{lon:.6f},{lat:.6f},{stamp},"
            f"0736,0003,6AAE,3381,00,913.3,,,,{battery},{'22' if ignition else '12'}0101,,,,{stamp},{count:04X}$"
            ).encode()


def recent(seconds_ago: float = 0.0) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=seconds_ago)


class FakeDevice(Protocol):
    """A tracker's TCP side: ``report()`` sends a frame and fires with the server's ``+SACK``."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: Deferred | None = None
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is not None and b"$" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"$")
            waiting, self.waiting = self.waiting, None
            waiting.callback(line + b"$")

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def report(self, frame: bytes, timeout: float = 30.0) -> Deferred:
        from twisted.internet import reactor

        self.waiting = Deferred()
        self.waiting.addTimeout(timeout, reactor)
        self.transport.write(frame)
        return self.waiting
