"""Is a tune valid ABC? The check that the measured valid rates use.

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
_LINE_REF = re.compile(r"^(Error|Warning) in line-char (\d+)-(\d+) : (.*)$")
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
    return [[msg for _, msg in errs] for errs in abc2midi_error_positions(tunes, timeout)]


def abc2midi_error_positions(tunes: list[str], timeout: float = 600.0) -> list[list[tuple[int, str]]]:
    """abc2midi's `Error` lines for each tune with where they point: (character offset in the tune's own text,
    message), from abc2midi's `line-char` positions. Needs abc2midi on PATH.

    abc2midi (Debian's 4.x) can abort part-way through a long file ("*** buffer overflow detected ***"), after
    reading tunes that each pass alone; its stdout then ends early and every later tune would look valid. So a
    run that does not exit cleanly keeps only the tunes whose output is complete (those before the last tune
    named in it), checks that tune alone, and goes on from the next one."""
    exe = abc2midi_path()
    if exe is None:
        raise RuntimeError("abc2midi is not installed")
    errors: list[list[tuple[int, str]]] = [[] for _ in tunes]
    start = 0
    while start < len(tunes):
        found, crashed_at = _run_abc2midi(exe, tunes[start:], timeout)
        if crashed_at is None:
            for i, errs in enumerate(found):
                errors[start + i] = errs
            break
        for i in range(crashed_at):
            errors[start + i] = found[i]
        alone, crashed = _run_abc2midi(exe, [tunes[start + crashed_at]], timeout)
        errors[start + crashed_at] = ([(len(tunes[start + crashed_at]), "abc2midi crashed reading this tune")]
                                      if crashed is not None else alone[0])
        start += crashed_at + 1
    return errors


def _run_abc2midi(exe: str, tunes: list[str], timeout: float) -> tuple[list[list[tuple[int, str]]], int | None]:
    """(errors per tune as (offset, message), None) from one abc2midi run over `tunes`; if it did not exit
    cleanly, the index of the last tune its output names (0 if none) in place of None: that tune's and later
    tunes' errors are unknown."""
    starts, lines = [], []
    origin: list[tuple[int, int]] = []  # per line of the file: (tune index, offset of the line in the tune)
    for i, tune in enumerate(tunes):
        starts.append(len(lines) + 1)  # 1-based line number of this tune's X: line
        lines.append(f"X:{i + 1}")
        origin.append((i, 0))
        offset = 0
        for k, ln in enumerate(tune.split("\n")):
            if ln.strip() and not _SET_ASIDE.match(ln) and not (k == 0 and ln.startswith("X:")):
                lines.append(ln)
                origin.append((i, offset))
            offset += len(ln) + 1
        lines.append("")
        origin.append((i, len(tune)))
    errors: list[list[tuple[int, str]]] = [[] for _ in tunes]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.abc"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        run = subprocess.run([exe, str(path), "-c"], capture_output=True, text=True, errors="replace",
                             timeout=timeout, cwd=tmp)
    last = 0
    for line in run.stdout.splitlines():
        m = _LINE_REF.match(line)
        if not m:
            continue
        number, char = int(m.group(2)), int(m.group(3))
        idx = bisect.bisect_right(starts, number) - 1
        last = max(last, idx)
        if m.group(1) == "Error" and 0 <= idx < len(tunes):
            tune_index, line_offset = origin[number - 1] if 0 < number <= len(origin) else (idx, 0)
            at = min(len(tunes[idx]), line_offset + char) if tune_index == idx else len(tunes[idx])
            errors[idx].append((at, m.group(4)))
    return errors, (None if run.returncode == 0 else last)


def check_tunes(tunes: list[str], use_abc2midi: bool = True) -> list[list[str]]:
    """Every problem of every tune: missing headers, then abc2midi's errors, or where abc2midi is not installed
    (or not wanted) where the ABC grammar (rlmusic/grammar.py) finds the tune stops being valid, which is the
    `valid` reward's test and the sampler's mask. An empty list means valid."""
    problems = [header_problems(t) for t in tunes]
    if use_abc2midi and abc2midi_path():
        found = abc2midi_errors(tunes)
    else:
        from rlmusic.grammar import AbcGrammar

        grammar = AbcGrammar()
        found = [[e] if (e := grammar.describe_error(t)) else [] for t in tunes]
    for p, errs in zip(problems, found):
        p.extend(errs)
    return problems


CHECKERS = ("auto", "abc2midi", "scanner")


def resolve_checker(name: str) -> str:
    """`--checker`: "abc2midi" (an error when it is not installed), "scanner" (the ABC grammar, rlmusic/grammar.py),
    or "auto" (abc2midi when installed). Returns the check that will run, so the summary can name it."""
    from rlmusic.errors import UserError

    if name not in CHECKERS:
        raise UserError(f"--checker {name}: expected one of {', '.join(CHECKERS)}")
    if name == "abc2midi" and abc2midi_path() is None:
        raise UserError("--checker abc2midi: abc2midi is not installed (Debian package abcmidi: "
                        "sudo apt-get install abcmidi), or use --checker scanner")
    if name == "auto":
        return "abc2midi" if abc2midi_path() else "scanner"
    return name


def checker(use_abc2midi: bool = True) -> str:
    """Which check `check_tunes` runs: "abc2midi" or "scanner"."""
    return "abc2midi" if use_abc2midi and abc2midi_path() else "scanner"


def valid_rate(tunes: list[str]) -> float:
    if not tunes:
        return 0.0
    return sum(not p for p in check_tunes(tunes)) / len(tunes)
