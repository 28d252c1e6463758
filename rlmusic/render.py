"""Write sampled tunes to disk: .abc always, plus the renderings asked for."""

from __future__ import annotations

from pathlib import Path

from rlmusic.errors import UserError
from rlmusic.rundir import atomic_write_text

FORMATS = ("abc",)


def check_formats(formats: list[str]) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"--formats: unknown format {', '.join(unknown)} (valid: {', '.join(FORMATS)})")


def write_outputs(tunes, out: Path, formats: list[str], log=print) -> str:
    out.mkdir(parents=True, exist_ok=True)
    for i, tune in enumerate(tunes, 1):
        atomic_write_text(out / f"tune_{i:03d}.abc", tune.text + "\n")
    limit = sum(t.hit_limit for t in tunes)
    return f"wrote {len(tunes)} tunes to {out}; {limit} hit the length limit"
