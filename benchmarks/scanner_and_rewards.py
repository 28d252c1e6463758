"""The ABC scanner against music21 (agreement and speed), and the throughput of the built-in rewards.

1. On a seeded sample of the embedded corpus: the share of tunes whose melody (ties merged, chords as their top
   note, grace notes left out) has the same MIDI pitches from rlmusic.abc.scan as from music21's ABC parser, and
   the time each takes per tune. Accidentals are not carried through the bar for this comparison, because
   music21 applies them to one note only (the ABC standard and abc2midi carry them; rlmusic does by default).
2. All built-in rewards but abc2midi (a subprocess) scoring the same tunes together, scans shared, one core.

    python benchmarks/scanner_and_rewards.py [--tunes 300]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic.abc import scan  # noqa: E402
from rlmusic.corpus import DEFAULT_SOURCES, load_corpus  # noqa: E402
from rlmusic.rewards import available, scan_all, score  # noqa: E402


def music21_melody(text: str) -> list[int]:
    from music21 import converter

    out = []
    for n in converter.parseData(text, format="abc").flatten().notes:
        if n.duration.isGrace or (n.tie is not None and n.tie.type in ("stop", "continue")):
            continue
        out.append(max(p.midi for p in n.pitches))
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--tunes", type=int, default=300)
    args = ap.parse_args()
    tunes = load_corpus(list(DEFAULT_SOURCES)).tunes
    sample = random.Random(0).sample(tunes, args.tunes)

    t_m21 = t_ours = 0.0
    differ = []
    for t in sample:
        a = time.perf_counter()
        ref = music21_melody(t)
        t_m21 += time.perf_counter() - a
        a = time.perf_counter()
        ours = [n.pitch for n in scan(t, carry_accidentals=False).melody()]
        t_ours += time.perf_counter() - a
        if ref != ours:
            differ.append(t)
    n = len(sample)
    print(f"scanner vs music21 on {n} corpus tunes: {n - len(differ)} agree ({(n - len(differ)) / n:.1%}); "
          f"with the fermata H (music21 drops the note after it) set aside: "
          f"{sum(1 for t in differ if 'H' not in t.split(chr(10), 5)[-1])} differ")
    print(f"| parser | ms per tune | speed-up |\n|---|---:|---:|\n| music21 | {t_m21 / n * 1e3:.1f} | 1x |\n"
          f"| rlmusic.abc.scan | {t_ours / n * 1e3:.2f} | {t_m21 / t_ours:.0f}x |")

    names = [k for k in available() if k != "abc2midi"]
    batch = random.Random(1).sample(tunes, 2000)
    a = time.perf_counter()
    scans = scan_all(batch)
    for name in names:
        score(name, batch, scans=scans)
    elapsed = time.perf_counter() - a
    print(f"{len(names)} built-in rewards together (scan included): {len(batch) / elapsed:,.0f} tunes/s on one core")


if __name__ == "__main__":
    main()
