"""The codecs are sans-IO: importing every built-in codec loads no Twisted module."""

from __future__ import annotations

import subprocess
import sys


def test_codecs_import_nothing_from_twisted() -> None:
    code = (
        "import sys\n"
        "import waygps.drivers.gv50.codec, waygps.drivers.teltonika.codec, waygps.drivers.generic.codec\n"
        "import waygps.events, waygps.actions, waygps.documents, waygps.framing\n"
        "print(sorted(m for m in sys.modules if m == 'twisted' or m.startswith('twisted.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
