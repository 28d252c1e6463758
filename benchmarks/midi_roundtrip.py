"""MIDI round trip: corpus tunes written to MIDI by abc2midi, read back through `--data` (midi2abc), compared.

A tune survives when the melody read back (the scanner's pitches and durations, ties merged) equals the
original's. Tunes with repeat signs or endings (abc2midi plays them out, so the notes are not the written ones),
chords, grace notes and decorations (played as extra or shortened notes) are left out of the sample.

    python benchmarks/midi_roundtrip.py [--num 300] [--sources essenFolksong oneills1850]
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

PLAIN = re.compile(r'[\[\]{}!~:."HLMOPSTuv+]')


def melody(text: str) -> list[tuple[int, float]]:
    from rlmusic.abc import scan

    return [(n.pitch, round(n.duration, 6)) for n in scan(text).melody()]


def plain(tune: str) -> bool:
    body = "\n".join(ln for ln in tune.split("\n") if not (len(ln) > 1 and ln[1] == ":"))
    return not PLAIN.search(body) and "|:" not in tune


def round_trip(tunes: list[str], folder: Path) -> list[tuple[str, str | None]]:
    from rlmusic.corpus import load_corpus

    for i, t in enumerate(tunes):
        src = folder / f"t{i:04d}.abc"
        src.write_text(t + "\n")
        subprocess.run(["abc2midi", str(src), "-o", str(folder / f"t{i:04d}.mid")], capture_output=True,
                       cwd=folder, timeout=60)
    mids = sorted(folder.glob("t*.mid"))
    back = dict(zip([m.stem for m in mids], load_corpus([str(m) for m in mids]).tunes)) if mids else {}
    return [(t, back.get(f"t{i:04d}")) for i, t in enumerate(tunes)]


def agreement(pairs) -> tuple[int, Counter]:
    same, why = 0, Counter()
    for original, back in pairs:
        if back is None:
            why["not converted"] += 1
            continue
        a, b = melody(original), melody(back)
        if a == b:
            same += 1
        elif [p for p, _ in a] == [p for p, _ in b]:
            why["same pitches, other durations"] += 1
        elif len(a) != len(b):
            why["other number of notes"] += 1
        else:
            why["other pitches"] += 1
    return same, why


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--num", type=int, default=300)
    ap.add_argument("--sources", nargs="+", default=["essenFolksong", "oneills1850", "airdsAirs"])
    args = ap.parse_args()
    from rlmusic.corpus import load_corpus

    tunes = [t for t in load_corpus(args.sources).tunes if plain(t)]
    random.Random(0).shuffle(tunes)
    tunes = tunes[: args.num]
    with tempfile.TemporaryDirectory() as tmp:
        same, why = agreement(round_trip(tunes, Path(tmp)))
    print(f"{same} of {len(tunes)} tunes ({same / len(tunes):.1%}) keep their melody through MIDI; the rest: "
          + ", ".join(f"{n} {w}" for w, n in why.most_common()))


if __name__ == "__main__":
    main()
