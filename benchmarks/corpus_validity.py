"""Valid share of the embedded ABC collections as shipped and after rlmusic's cleaning (abc2midi check).

A tune passes when its header has X:, T:, M: and K: and abc2midi reports no `Error` line (rlmusic.validity).
"As shipped" is each tune as split from its file on X: lines; "cleaned" is what pretraining reads.

    python benchmarks/corpus_validity.py
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic import corpus, validity  # noqa: E402


def main() -> None:
    if validity.abc2midi_path() is None:
        sys.exit("error: abc2midi is not installed (Debian package abcmidi)")
    print("| collection | tunes | valid as shipped | kept after cleaning | valid after cleaning |")
    print("|---|---:|---:|---:|---:|")
    totals = Counter()
    remaining = Counter()
    for name in corpus.DEFAULT_SOURCES:
        raw = [t for f in corpus.resolve_sources([name]) for t in corpus.split_tunes(corpus.read_abc_file(f))]
        kept = [t for t in (corpus.clean_tune(r)[0] for r in raw) if t]
        raw_ok = sum(not p for p in validity.check_tunes(raw))
        problems = validity.check_tunes(kept)
        ok = sum(not p for p in problems)
        remaining.update(re.sub(r"\d+", "N", e) for p in problems for e in set(p))
        totals.update(tunes=len(raw), raw_ok=raw_ok, kept=len(kept), ok=ok)
        print(f"| {name} | {len(raw):,} | {raw_ok / len(raw):.1%} | {len(kept):,} | {ok / len(kept):.1%} |")
    print(f"| all | {totals['tunes']:,} | {totals['raw_ok'] / totals['tunes']:.1%} | {totals['kept']:,} | "
          f"{totals['ok'] / totals['kept']:.1%} |")
    print("\nremaining problems (tunes):", ", ".join(f"{e} ({n})" for e, n in remaining.most_common(6)))


if __name__ == "__main__":
    main()
