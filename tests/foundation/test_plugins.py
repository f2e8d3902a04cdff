"""A driver shipped by a separately installed package is found like a built-in one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_builtin_drivers_are_plugins() -> None:
    from waygps.drivers import find_drivers

    drivers = find_drivers()
    assert {"gv50", "teltonika", "generic"} <= set(drivers)


def test_separately_installed_plugin_is_found(tmp_path: Path) -> None:
    target = tmp_path / "site"
    # Built from a copy: a build writes build/ and *.egg-info beside the sources.
    source = tmp_path / "plugin-driver"
    shutil.copytree(ROOT / "examples" / "plugin-driver", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert (target / "twisted" / "plugins" / "waygps_example_driver.py").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    listed = subprocess.run([sys.executable, "-m", "waygps.cli.main", "drivers"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("example ") for line in listed.stdout.splitlines()), listed.stdout
    capture = tmp_path / "capture.txt"
    capture.write_bytes(b"123456789012345;-23.5;-46.6;42\nbroken\n")
    decoded = subprocess.run(
        [sys.executable, "-m", "waygps.cli.main", "decode", "--driver", "example", str(capture)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert decoded.returncode == 1  # the "broken" line is rejected
    assert '"IMEI": "123456789012345"' in decoded.stdout and '"latitude": -23.5' in decoded.stdout
    assert "rejected (malformed): broken" in decoded.stderr
    without = subprocess.run([sys.executable, "-m", "waygps.cli.main", "drivers"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert "example" not in without.stdout
