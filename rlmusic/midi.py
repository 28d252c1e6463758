"""MIDI files as training data: each file converted to one ABC tune by abcmidi's `midi2abc`.

`midi2abc -gk -ga` guesses the key and the anacrusis and keeps the meter and unit length it finds. It writes
every track as a voice (`V:n`); one voice is kept: the one with the most notes, or the one on the MIDI channel
asked for (`channel`), and percussion (channel 10) never. The tune's title becomes the file's name. The text
then goes through the same cleaning as any ABC (rlmusic/corpus.py).

Files are converted in parallel (one midi2abc process each, an argument list, a time limit), with a progress bar
for large folders; only the kept tune's text is held, so memory stays small however many files there are. A file
that cannot be converted is dropped with its reason: not a MIDI file, a truncated file, percussion only, no
notes, a conversion error, the time limit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rlmusic.errors import UserError

MIDI_SUFFIXES = (".mid", ".midi")
TIME_LIMIT = 30.0  # seconds per file
PROGRESS_FILES = 20  # more files than this show a progress bar
_VOICE = re.compile(r"^V:\s*(\S+)")
_CHANNEL = re.compile(r"^%%MIDI channel (\d+)")
_NOTE = re.compile(r"[A-Ga-g]")
PERCUSSION = 10


def is_midi(path: Path) -> bool:
    return path.suffix.lower() in MIDI_SUFFIXES


def midi2abc_path() -> str | None:
    return shutil.which("midi2abc")


def require_midi2abc(path: Path) -> str:
    exe = midi2abc_path()
    if exe is None:
        raise UserError(f"--data {path}: reading MIDI needs midi2abc, from the Debian package abcmidi "
                        "(sudo apt-get install abcmidi)")
    return exe


def convert(path: Path, channel: int = 0, exe: str | None = None) -> tuple[str | None, str]:
    """(ABC text of one tune, "") or (None, why the file was dropped)."""
    exe = exe or require_midi2abc(path)
    try:
        run = subprocess.run([exe, "-f", str(path), "-gk", "-ga"], capture_output=True, text=True,
                             errors="replace", timeout=TIME_LIMIT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"time limit ({TIME_LIMIT:g} s)"
    out = run.stdout + run.stderr
    if "expecting MThd" in out:
        return None, "not a MIDI file"
    if "premature EOF" in out or "Error" in out and run.returncode != 0:
        return None, "truncated MIDI file" if "EOF" in out else "conversion error"
    if run.returncode != 0:
        return None, "conversion error"
    return pick_voice(run.stdout, path.stem, channel)


def pick_voice(text: str, title: str, channel: int = 0) -> tuple[str | None, str]:
    """Keep the header and one voice of midi2abc's output (see the module docstring)."""
    header: list[str] = []
    voices: list[dict] = []
    pending = ""
    for raw in text.split("\n"):
        line = pending + raw
        if line.rstrip().endswith("\\"):  # a continued line: the same line of music
            pending = line.rstrip()[:-1]
            continue
        pending = ""
        if _VOICE.match(line):
            voices.append({"lines": [], "channel": None, "notes": 0})
            continue
        target = voices[-1]["lines"] if voices else header
        m = _CHANNEL.match(line)
        if m and voices:
            voices[-1]["channel"] = int(m.group(1))
        if voices and not line.startswith("%"):
            voices[-1]["notes"] += len(_NOTE.findall(re.sub(r'"[^"]*"|%.*', "", line)))
        target.append(line)
    if not voices:  # a single voice without V: lines
        body = [ln for ln in header if not (len(ln) > 1 and ln[1] == ":") and not ln.startswith("%")]
        voices = [{"lines": body, "channel": None, "notes": sum(len(_NOTE.findall(b)) for b in body)}]
        header = [ln for ln in header if ln not in body]
    pitched = [v for v in voices if v["channel"] != PERCUSSION]
    if not pitched:
        return None, "percussion only"
    if channel:
        pitched = [v for v in pitched if (v["channel"] or 1) == channel]  # no channel line: MIDI's channel 1
        if not pitched:
            return None, f"no voice on MIDI channel {channel}"
    best = max(pitched, key=lambda v: v["notes"])
    if not best["notes"]:
        return None, "no notes"
    head = [f"T:{title}" if ln.startswith("T:") else ln for ln in header]
    return "\n".join(head + best["lines"]).strip("\n"), ""


def convert_all(paths: list[Path], channel: int = 0):
    """Yield (path, text or None, reason) for every file, converted in parallel, in the order given."""
    if not paths:
        return
    exe = require_midi2abc(paths[0])
    bar = None
    if len(paths) > PROGRESS_FILES:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), unit="file", desc="converting MIDI", file=sys.stderr, mininterval=0.5)
    try:
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            # map() keeps the order; its results are consumed as they come, so only finished texts are held
            for path, (text, reason) in zip(paths, pool.map(lambda p: convert(p, channel, exe), paths)):
                if bar is not None:
                    bar.update(1)
                yield path, text, reason
    finally:
        if bar is not None:
            bar.close()
