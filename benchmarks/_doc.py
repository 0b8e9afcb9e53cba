"""Writing one section of docs/benchmarks.md without touching the others."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["write_section"]


def write_section(out: Path, mark: str, text: str) -> None:
    """Replace the section headed ``mark`` (up to the next ``## `` heading) in ``out``, or append it."""
    doc = out.read_text() if out.exists() else "# Benchmarks\n"
    if mark + "\n" in doc:
        before, rest = doc.split(mark + "\n", 1)
        after = re.split(r"^(?=## )", rest, maxsplit=1, flags=re.MULTILINE)
        tail = after[1] if len(after) > 1 else ""
        doc = before.rstrip() + "\n\n" + text.rstrip() + "\n" + ("\n" + tail if tail else "")
    else:
        doc = doc.rstrip() + "\n\n" + text.rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
