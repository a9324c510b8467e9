"""The hand-made dialplan shapes under tests/shapes/ (one folder each: trace.jsonl, meta.json,
notes.md) and their per-folder xfail flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telephony.trace import discover_traces
from tests.conftest import load_meta

SHAPES_ROOT = Path(__file__).resolve().parent / "shapes"
SHAPES = discover_traces(SHAPES_ROOT)


def shape_params(only: Any = None) -> list[Any]:
    """One pytest param per shape folder, xfail (non-strict) while its meta.json says so:
    the flag goes once the tracker handles the shape."""
    params = []
    for folder in SHAPES:
        meta = load_meta(folder)
        if only is not None and not only(meta):
            continue
        marks = [pytest.mark.xfail(reason=meta["xfail"], strict=False)] if meta.get("xfail") else []
        params.append(pytest.param(folder, id=folder.name, marks=marks))
    return params
