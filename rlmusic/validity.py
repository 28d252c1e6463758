"""Is a tune valid ABC? The check that the README's valid rates use.

A tune is valid when its header has X:, T:, M: and K: (L: may be implied by M:, as the standard allows) and
abc2midi reads it without an `Error` line. abc2midi exits 0 even on errors, so its output is what we read.
R:, I: and %% lines are set aside before abc2midi sees the tune: abc2midi gives R: a meaning of its own
(stress models) that folk collections do not intend.

Many tunes are checked with one abc2midi process: they go into one file and each error's line number says
which tune it belongs to.
"""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

REQUIRED_HEADERS = ("X", "T", "M", "K")
_ERROR_LINE = re.compile(r"^Error in line-char (\d+)-(\d+) : (.*)$")
_SET_ASIDE = re.compile(r"^(R:|I:|%%)")


def abc2midi_path() -> str | None:
    return shutil.which("abc2midi")


def header_problems(tune: str) -> list[str]:
    """Required header fields missing before the K: line (which closes the header)."""
    seen = set()
    for line in tune.split("\n"):
        if len(line) > 1 and line[1] == ":" and line[0].isalpha():
            seen.add(line[0])
            if line[0] == "K":
                break
        elif line.strip() and seen:
            break  # music before K:
    return [f"missing {h}: header" for h in REQUIRED_HEADERS if h not in seen]


def abc2midi_errors(tunes: list[str], timeout: float = 600.0) -> list[list[str]]:
    """abc2midi's `Error` lines for each tune (empty lists where there are none). Needs abc2midi on PATH."""
    exe = abc2midi_path()
    if exe is None:
        raise RuntimeError("abc2midi is not installed")
    starts, lines = [], []
    for i, tune in enumerate(tunes):
        body = [ln for ln in tune.strip("\n").split("\n") if ln.strip() and not _SET_ASIDE.match(ln)]
        if body and body[0].startswith("X:"):
            body = body[1:]
        starts.append(len(lines) + 1)  # 1-based line number of this tune's X: line
        lines += [f"X:{i + 1}", *body, ""]
    errors: list[list[str]] = [[] for _ in tunes]
    if not tunes:
        return errors
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.abc"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = subprocess.run([exe, str(path), "-c"], capture_output=True, text=True, errors="replace",
                             timeout=timeout, cwd=tmp).stdout
    for line in out.splitlines():
        m = _ERROR_LINE.match(line)
        if m:
            idx = bisect.bisect_right(starts, int(m.group(1))) - 1
            if 0 <= idx < len(tunes):
                errors[idx].append(m.group(3))
    return errors


def check_tunes(tunes: list[str]) -> list[list[str]]:
    """Every problem of every tune: missing headers, then abc2midi's errors. An empty list means valid."""
    problems = [header_problems(t) for t in tunes]
    for p, errs in zip(problems, abc2midi_errors(tunes)):
        p.extend(errs)
    return problems


def valid_rate(tunes: list[str]) -> float:
    if not tunes:
        return 0.0
    return sum(not p for p in check_tunes(tunes)) / len(tunes)
