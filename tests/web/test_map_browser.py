"""The map page in a real browser: headless Chromium driven by Selenium, a fake GV50 over real TCP.

Skipped, with the reason printed, where Chromium or chromedriver cannot be found.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.threads import deferToThread

from browser_support import NO_TILES, Browser, FakeDevice, find_browser, gtfri, recent
from feed_support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

IMEI = "862894020180553"
LAT, LON = -17.783333, -63.182222


@pytest.fixture
def browser() -> Any:
    found = find_browser()
    if isinstance(found, str):
        print(f"browser test skipped: {found}")
        pytest.skip(found)
    chromium, chromedriver = found
    instance = Browser(chromium, chromedriver)
    yield instance
    instance.quit()


def settings() -> dict:
    return {"websocket": {"tokens": [{"token": "map-secret", "devices": "*"}]}, "map": {"tiles": NO_TILES}}


@pytest_twisted.inlineCallbacks
def test_a_reporting_device_appears_moves_and_goes_offline(start_server: Any, browser: Browser) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "transport": "tcp"}], **settings())
    base = f"http://127.0.0.1:{server.web_port}"
    yield deferToThread(browser.driver.get, f"{base}/#token=map-secret")
    yield deferToThread(browser.wait_for, "window.WayGPS && WayGPS.state.connection === 'connected'")
    # The token left the address bar once read.
    url = yield deferToThread(lambda: browser.driver.current_url)
    assert "map-secret" not in url

    device = FakeDevice()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    try:
        answer = yield device.report(gtfri(IMEI, LAT, LON, recent(60), 0x10))
        assert answer == b"+SACK:0010$"
        where = yield deferToThread(browser.wait_for, f"WayGPS.position('{IMEI}')")
        assert where["lat"] == pytest.approx(LAT, abs=1e-6) and where["lon"] == pytest.approx(LON, abs=1e-6)
        assert where["state"] == "moving"
        # The marker is on the page, coloured by its state, and listed on the side.
        state = yield deferToThread(browser.wait_for,
                                    f"document.querySelector('.vehicle-icon[data-id=\"{IMEI}\"]')"
                                    f" && document.querySelector('.vehicle-icon[data-id=\"{IMEI}\"]').dataset.state")
        assert state == "moving"
        yield deferToThread(browser.wait_for, f"document.querySelector('#devices li[data-id=\"{IMEI}\"]')")

        # A newer report moves it; a replayed older one (+BUFF) is stored but does not move it back.
        yield device.report(gtfri(IMEI, LAT + 0.01, LON, recent(30), 0x11))
        yield deferToThread(browser.wait_for, f"Math.abs(WayGPS.position('{IMEI}').lat - {LAT + 0.01}) < 1e-6")
        yield device.report(gtfri(IMEI, LAT - 1.0, LON, recent(3 * 3600), 0x12, buffered=True))
        yield device.report(gtfri(IMEI, LAT + 0.02, LON, recent(10), 0x13))
        yield deferToThread(browser.wait_for, f"Math.abs(WayGPS.position('{IMEI}').lat - {LAT + 0.02}) < 1e-6")
        trail = yield deferToThread(browser.driver.execute_script,
                                    f"return WayGPS.trails['{IMEI}'].getLatLngs().map(p => p.lat);")
        assert trail == pytest.approx([LAT, LAT + 0.01, LAT + 0.02], abs=1e-6)  # the replay never showed
    finally:
        device.transport.loseConnection()
    yield device.closed
    state = yield deferToThread(browser.wait_for, f"WayGPS.position('{IMEI}').state === 'offline' && "
                                                  f"document.querySelector('.vehicle-icon[data-id=\"{IMEI}\"]')"
                                                  f".dataset.state")
    assert state == "offline"


@pytest_twisted.inlineCallbacks
def test_a_wrong_token_shows_an_error_not_an_empty_map(start_server: Any, browser: Browser) -> None:
    server = yield start_server(**settings())
    yield deferToThread(browser.driver.get, f"http://127.0.0.1:{server.web_port}/#token=not-the-token")
    message = yield deferToThread(browser.wait_for, "window.WayGPS && WayGPS.state.error")
    assert "token" in message
    shown = yield deferToThread(browser.driver.execute_script,
                                "return !document.getElementById('error').hidden && "
                                "document.getElementById('error-text').textContent;")
    assert shown == message
    assert (yield deferToThread(browser.driver.execute_script, "return WayGPS.state.connection;")) == "error"


@pytest_twisted.inlineCallbacks
def test_without_a_token_the_page_asks_once_and_reconnects_after_the_server_closes(
        start_server: Any, browser: Browser) -> None:
    server = yield start_server(**settings())
    yield deferToThread(browser.driver.get, f"http://127.0.0.1:{server.web_port}/")
    yield deferToThread(browser.wait_for, "!document.getElementById('token-form').hidden")

    def type_token() -> None:
        from selenium.webdriver.common.by import By

        browser.driver.find_element(By.ID, "token-input").send_keys("map-secret")
        browser.driver.find_element(By.CSS_SELECTOR, "#token-form button").click()

    yield deferToThread(type_token)
    yield deferToThread(browser.wait_for, "WayGPS.state.connection === 'connected'")
    stored = yield deferToThread(browser.driver.execute_script, "return sessionStorage.getItem('waygps.token');")
    assert stored == "map-secret"
    yield deferToThread(browser.driver.execute_script, "WayGPS.subscribe('862894020180553');")
    feed = server.service.web.feed
    yield wait_until(lambda: [c.subscriptions for c in feed.clients] == [{"862894020180553"}], "the subscription")
    (client,) = list(feed.clients)
    client.sendClose(4001, "test")  # as a slow client would be closed
    yield deferToThread(browser.wait_for, "WayGPS.state.connection !== 'connected'")
    yield deferToThread(browser.wait_for, "WayGPS.state.connection === 'connected'")  # after the backoff
    # A fresh connection, subscribed again.
    yield wait_until(lambda: any(c.subscriptions == {"862894020180553"} for c in feed.clients) and
                     client not in feed.clients, "the page to subscribe again")
    # A reload in the same tab does not ask again: the token is in sessionStorage.
    yield deferToThread(browser.driver.refresh)
    yield deferToThread(browser.wait_for, "window.WayGPS && WayGPS.state.connection === 'connected'")
    assert (yield deferToThread(browser.driver.execute_script,
                                "return document.getElementById('token-form').hidden;"))


@pytest_twisted.inlineCallbacks
def test_the_replay_panel_draws_a_stored_day_lists_its_trip_and_plays_it(start_server: Any,
                                                                        browser: Browser) -> None:
    server = yield start_server(listeners=[{"driver": "gv50", "transport": "tcp"}],
                                websocket={"tokens": [{"token": "map-secret", "devices": "*"}]},
                                map={"tiles": NO_TILES})
    device = FakeDevice()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port(0)), device)
    start = recent(900)
    try:
        # About 1.1 km north every two minutes with the ignition on, then the ignition off: one trip.
        for step in range(5):
            when = start + timedelta(seconds=120 * step)
            yield device.report(gtfri(IMEI, LAT + 0.01 * step, LON, when, 0x20 + step, speed=33.0,
                                      ignition=step < 4))
    finally:
        device.transport.loseConnection()
    yield device.closed

    yield deferToThread(browser.driver.get, f"http://127.0.0.1:{server.web_port}/#token=map-secret")
    yield deferToThread(browser.wait_for, f"window.WayGPS && WayGPS.replay && "
                                          f"WayGPS.replay.device.querySelector('option[value=\"{IMEI}\"]')")
    day = start.strftime("%Y-%m-%d")
    yield deferToThread(browser.driver.execute_script,
                        f"WayGPS.replay.device.value = '{IMEI}'; WayGPS.replay.day.value = '{day}';"
                        f"WayGPS.replay.load.click();")
    points = yield deferToThread(browser.wait_for, "WayGPS.replay.track && WayGPS.replay.track.latlngs.length")
    assert points == 5
    first = yield deferToThread(browser.driver.execute_script, "return WayGPS.replay.track.latlngs[0];")
    assert first == pytest.approx([LAT, LON], abs=1e-6)
    trips = yield deferToThread(browser.wait_for, "document.querySelectorAll('.wg-replay-trips li').length")
    assert trips == 1
    # Play: the marker leaves the first point along the track.
    yield deferToThread(browser.driver.execute_script, "WayGPS.replay.speed.value = '300'; WayGPS.replay.play.click();")
    moved = yield deferToThread(browser.wait_for, "WayGPS.replay.marker.getLatLng().lat > "
                                                  f"{LAT + 0.001} && WayGPS.replay.marker.getLatLng().lat")
    assert LAT < moved <= LAT + 0.04 + 1e-6
