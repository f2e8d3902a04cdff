"""Both example drivers, as a plugin author gets them: installed, decoding a capture, their own tests
(which use the installed ``waygps.testing`` plugin) passing against the embedded store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

TEXT_CAPTURE = b"123456789012345;-23.5;-46.6;42;20260115115900\n123456789012345;HB\nbroken\n"


def binary_capture() -> bytes:
    sys.path.insert(0, str(ROOT / "examples" / "binary-driver" / "src"))
    try:
        from waygps_binary_example import protocol as wb
    finally:
        sys.path.pop(0)
    session = (wb.frame(wb.LOGIN, b"123456789012345", 1)
               + wb.frame(wb.POSITION, wb.position_body(1768478340, -23.5, -46.6, 42.5, 90), 2)
               + b"junk" + wb.frame(wb.HEARTBEAT, b"", 3))
    return session.hex().encode() + b"\n"


EXAMPLES = [
    # directory, driver, capture, decode arguments, what the decode prints
    ("plugin-driver", "example", TEXT_CAPTURE, [], '"latitude": -23.5'),
    ("binary-driver", "wbin", None, ["--hex"], '"course": 90.0'),
]


def install(example: str, tmp_path: Path) -> Path:
    source = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dropin.cache"))
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.mark.integration
@pytest.mark.parametrize("example, driver, capture, args, expected", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_installs_decodes_and_passes_its_tests(example: str, driver: str, capture: bytes | None,
                                                       args: list[str], expected: str, tmp_path: Path,
                                                       mongo_uri: str) -> None:
    target = install(example, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(target), WAYGPS_TEST_MONGODB_URI=mongo_uri)
    listed = subprocess.run([sys.executable, "-m", "waygps.cli.main", "drivers"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert any(line.split()[:1] == [driver] for line in listed.stdout.splitlines()), listed.stdout + listed.stderr

    file = tmp_path / "capture"
    file.write_bytes(capture if capture is not None else binary_capture())
    decoded = subprocess.run([sys.executable, "-m", "waygps.cli.main", "decode", "--driver", driver, *args,
                              "--now", "2026-01-15T12:00:00Z", str(file)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert decoded.returncode == 1, decoded.stderr  # each capture holds one bad piece on purpose
    assert expected in decoded.stdout and "rejected (" in decoded.stderr
    assert '"type": "heartbeat"' in decoded.stdout

    # The example's own suite, run as its author would: from its directory, against the installed package.
    tests = tmp_path / example / "tests"
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "-W", "ignore::DeprecationWarning", str(tests)],
                         capture_output=True, text=True, env=env, cwd=tmp_path / example, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout and "skipped" not in ran.stdout, ran.stdout[-2000:]
