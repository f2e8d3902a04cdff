"""docs/writing-a-driver.md cannot rot: its code blocks are built into the H02 driver package they
describe, which is installed, listed, run by `waygps decode`, configured, and tested with its own
test file (through the installed waygps.testing plugin, end to end against the embedded store)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "writing-a-driver.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
FRAME = b"*HQ,865205030330012,V1,115900,A,2330.0000,S,04636.0000,W,10.00,90,150126,FFFFFBFF#"


def blocks() -> list[tuple[str, str | None, str]]:
    """(language, file it belongs to or None, text) of every fenced block, in order."""
    out = []
    for language, text in BLOCK.findall(GUIDE.read_text()):
        first = text.splitlines()[0] if text else ""
        marker = re.match(r"# file: (\S+)$", first)
        out.append((language, marker.group(1) if marker else None, text))
    return out


def run(*args: str, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def test_every_python_block_compiles() -> None:
    found = [text for language, _, text in blocks() if language == "python"]
    assert len(found) >= 5
    for text in found:
        compile(text, "<guide>", "exec")


def test_no_link_leaves_the_repository() -> None:
    """The guide names only files of this repository; no page or docstring points outside it."""
    text = GUIDE.read_text()
    for target in re.findall(r"`((?:docs|examples)/[\w./-]+)`", text):
        assert (ROOT / target).exists(), target
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert not link.startswith(("http", "/", "..")), link
    for path in [*ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.py"), *ROOT.glob("examples/**/*.md"),
                 *ROOT.glob("src/**/*.py")]:
        body = path.read_text(errors="replace")
        assert "shared/docs" not in body and "../shared" not in body, path


@pytest.mark.integration
def test_the_guide_builds_a_working_driver(tmp_path: Path, mongo_uri: str) -> None:
    package = tmp_path / "h02-driver"
    session: list[str] = []
    toml_blocks: list[str] = []
    for language, file, text in blocks():
        if file is not None:
            path = package / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif language == "python":
            session.append(text)
        elif language == "toml":
            toml_blocks.append(text)
    (package / "src" / "h02_driver" / "__init__.py").write_text("")
    assert (package / "src" / "twisted" / "plugins" / "waygps_h02.py").exists()
    assert not (package / "src" / "twisted" / "plugins" / "__init__.py").exists()

    target = tmp_path / "site"
    installed = run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(package), env=dict(os.environ), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    env = dict(os.environ, PYTHONPATH=str(target), WAYGPS_TEST_MONGODB_URI=mongo_uri)

    listed = run("-m", "waygps.cli.main", "drivers", env=env, cwd=tmp_path)
    assert any(line.split()[:1] == ["h02"] for line in listed.stdout.splitlines()), listed.stdout + listed.stderr

    # The inline blocks, in order, as one script.
    script = tmp_path / "session.py"
    script.write_text("\n\n".join(session))
    ran = run(str(script), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    # The configuration block is valid with the driver installed.
    config = tmp_path / "waygps.toml"
    config.write_text(next(t for t in toml_blocks if "[[listener]]" in t))
    checked = run("-m", "waygps.cli.main", "check-config", "--config", str(config), env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The decode exit statuses of section 10.
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_bytes(FRAME + b"\r\n")
    bad.write_bytes(FRAME.replace(b"2330", b"2399"))
    statuses = [run("-m", "waygps.cli.main", "decode", "--driver", driver, str(path), env=env, cwd=tmp_path)
                for driver, path in (("h02", good), ("h02", bad), ("nope", good))]
    assert [s.returncode for s in statuses] == [0, 1, 2], [s.stderr for s in statuses]
    assert '"latitude": -23.5' in statuses[0].stdout and "rejected (bad_position)" in statuses[1].stderr

    # The guide's test file, as its author runs it.
    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "tests", env=env,
                 cwd=package, timeout=600)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert "5 passed" in tested.stdout, tested.stdout[-2000:]
