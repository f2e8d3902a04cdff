"""What the benchmark scripts share: the machine line, process CPU and memory, the file limit,
and an embedded SecantusDB started for a run.

Every script prints :func:`machine` with its figure: the machine is shared (other
work runs beside the benchmarks), so the load average is part of the result.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: cores, CPU model, load average now, Python (which build), and that the machine may be shared."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return (f"machine: {usable} usable cores of {os.cpu_count()} ({cpu_model()}), load average {load} "
            f"(1/5/15 min; the machine is shared, other work ran beside this), Python {sys.version.split()[0]} "
            f"({python_build()}), {platform.system()} {platform.release()}")


def python_build() -> str:
    """Where the interpreter comes from and whether it runs on a shared libpython.

    The build matters to every CPU figure: CPython built without profile-guided and link-time
    optimisation (pyenv's default) on a shared ``libpython`` runs WayGPS's Python code with 14%
    more instructions than Debian's build (docs/benchmarks.md, "The reactor and the Python build")."""
    try:
        with open("/proc/self/maps") as maps:
            shared = "libpython" in maps.read()
    except OSError:  # pragma: no cover - not Linux
        return os.path.realpath(sys.executable)
    return f"{os.path.realpath(sys.executable)}, {'shared' if shared else 'static'} libpython"


def add_reactor_option(parser: Any) -> None:
    parser.add_argument("--reactor", choices=("waygps", "default"), default="waygps",
                        help="the event loop: waygps.reactor, as `make run` and the systemd unit run WayGPS "
                             "(twistd --reactor waygps), or Twisted's default")


def install_reactor(name: str) -> str:
    """Install the reactor named by ``--reactor`` (before anything imports Twisted's); its class name."""
    if name == "waygps":
        from waygps.reactor import install

        install()
    from twisted.internet import reactor

    return type(reactor).__name__


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (this one by default), from /proc."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_split(pid: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (this one by default)."""
    if pid is None:
        t = os.times()
        return t.user, t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process, from /proc (this one by default)."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


def raise_fd_limit(wanted: int | None = None) -> int:
    """Raise RLIMIT_NOFILE to ``wanted`` (or the hard limit); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else min(max(soft, wanted), hard)
    if target == resource.RLIM_INFINITY:
        target = max(soft, wanted or 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Store:
    """An embedded SecantusDB for one run (or an existing MongoDB when ``uri`` is given)."""

    def __init__(self, uri: str | None = None) -> None:
        self.process: subprocess.Popen | None = None
        self.dir: str | None = None
        if uri:
            self.uri = uri
            return
        from waygps.store.embedded import find_command

        command = find_command("secantusd-py")
        if command is None:
            raise SystemExit("secantusd-py not found: give --uri or install the embedded extra")
        self.dir = tempfile.mkdtemp(prefix="waygps-bench-")
        port = free_port()
        self.process = subprocess.Popen(
            [command, "--host", "127.0.0.1", "--port", str(port), "--storage-path", f"{self.dir}/data",
             "--standalone", "--log-level", "WARNING"],
            stdout=open(f"{self.dir}/log", "wb"), stderr=subprocess.STDOUT)
        self.uri = f"mongodb://127.0.0.1:{port}/"
        import pymongo

        deadline = time.monotonic() + 60
        while True:
            try:
                # Closed at once: its monitor threads would otherwise run in the measured process.
                with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300) as client:
                    client.admin.command("ping")
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def cpu(self) -> float | None:
        """CPU seconds of the store process and its children (None for an external store)."""
        if self.process is None:
            return None
        pids = [self.process.pid, *children_of(self.process.pid)]
        return sum(cpu_seconds(p) for p in pids)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
