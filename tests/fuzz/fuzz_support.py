"""The drivers' test vectors as fuzzing seeds (shared by tests/fuzz and benchmarks/fuzz_codecs.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def targets() -> dict[str, Any]:
    from waygps.fuzzing import builtin_targets

    gv50 = _load("gv50_vectors_for_fuzz", TESTS / "drivers" / "gv50" / "gv50_vectors.py")
    teltonika = _load("teltonika_vectors_for_fuzz", TESTS / "drivers" / "teltonika" / "teltonika_vectors.py")
    return builtin_targets(gv50.FRAMES.values(), (bytes.fromhex(v) for v in teltonika.TV.values()))
