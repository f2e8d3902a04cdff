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


def _venv_seeing_this_environment(tmp_path: Path) -> Path:
    """A new virtualenv (no pip) whose site-packages also load this interpreter's, .pth files included."""
    import site
    import sysconfig
    import venv

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dirs = [d for d in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(d).is_dir()]
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
    (Path(purelib) / "zz_host_site.pth").write_text(lines)
    return python


def test_editable_plugin_is_found(tmp_path: Path) -> None:
    """``pip install -e`` of a plugin package is enough: no .pth to write, no PYTHONPATH."""
    source = tmp_path / "plugin-driver"
    shutil.copytree(ROOT / "examples" / "plugin-driver", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    python = _venv_seeing_this_environment(tmp_path)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--editable", str(source)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run([str(python), "-m", "waygps.cli.main", "drivers"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"example", "gv50", "teltonika", "generic"} <= names, listed.stdout
    # Editable means editable: a change in the checkout is seen without reinstalling.
    codec = source / "src" / "waygps_example_driver" / "codec.py"
    codec.write_text(codec.read_text() + "\nEDITED_IN_PLACE = True\n")
    edited = subprocess.run([str(python), "-c", "import waygps_example_driver.codec as c; print(c.EDITED_IN_PLACE)"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert edited.stdout.strip() == "True", edited.stderr
    twistd = subprocess.run(
        [str(python), "-c", "import sys; sys.argv = ['twistd', '--help']; from twisted.scripts.twistd import run; run()"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert any(line.split()[:1] == ["waygps"] for line in twistd.stdout.splitlines()), twistd.stdout


def test_waygps_plugins_come_from_a_path_entry() -> None:
    """The plugin modules sit under a ``sys.path`` entry (``src/`` for an editable install), the only
    place Twisted's ``pluginPackagePaths`` looks; an import-hook finder would hide them."""
    import twisted.plugins

    import waygps

    root = Path(waygps.__file__).resolve().parents[1]
    assert str(root) in {str(Path(p).resolve()) for p in sys.path if p}
    assert (root / "twisted" / "plugins" / "waygps_server.py").exists()
    assert str((root / "twisted" / "plugins").resolve()) in {str(Path(p).resolve()) for p in twisted.plugins.__path__}


def test_this_install_sees_every_driver_from_anywhere(tmp_path: Path) -> None:
    """``make venv`` is ``pip install -e .``: from any directory, with no PYTHONPATH, the CLI lists the
    built-in drivers and twistd has its ``waygps`` subcommand (no .pth written by hand)."""
    import json
    from importlib.metadata import distribution

    direct = distribution("waygps").read_text("direct_url.json")
    editable = bool(direct) and json.loads(direct).get("dir_info", {}).get("editable", False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run([sys.executable, "-m", "waygps.cli.main", "drivers"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"gv50", "teltonika", "generic"} <= names, (editable, listed.stdout, listed.stderr)
    twistd = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['twistd', '--help']; from twisted.scripts.twistd import run; run()"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert any(line.split()[:1] == ["waygps"] for line in twistd.stdout.splitlines()), twistd.stdout
    print(f"waygps installed {'editable' if editable else 'as a regular package'}")
