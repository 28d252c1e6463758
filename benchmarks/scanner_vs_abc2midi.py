"""The scanner's verdict (the `valid` reward) against abc2midi's (the validity check of docs/measurements.md), and its tie check.

The `valid` reward is the scanner's check, in the loop for every tune; abc2midi is the check the valid rates are
measured by. Where the two disagree, fine-tuning rewards tunes that the measure calls invalid (or the reverse).
For the embedded corpus (cleaned, as pretraining reads it) and for tunes sampled from a checkpoint at T=1.0:

- how often the scanner passes a tune abc2midi rejects (false accepts) and rejects one abc2midi passes, now and
  as it was at `--before` (a git revision: its `rlmusic/abc.py` is loaded beside today's; the default is the
  version before the tie, unequal broken-rhythm and repeat checks);
- ties alone: of the tunes abc2midi rejects for a tie (`Could not find note to be tied`, `Bad tie`, `Cannot find
  note before tie`), the share the scanner flags with a `tie` problem (recall), and of those it flags, the share
  abc2midi rejects for a tie (precision);
- where each places the error: abc2midi's `line-char` of a tie error points at the end of the line or a later
  bar line, the scanner at the note that does not continue the tie; the mean distance in characters is how far
  the dense credit of `abc2midi_clean` lands from the character at fault.

    python benchmarks/scanner_vs_abc2midi.py [--checkpoint pretrained] [--num 600] [--seed 0] [--before c6f14ce]
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic import validity  # noqa: E402
from rlmusic.abc import scan  # noqa: E402

TIE_ERRORS = ("Could not find note to be tied", "Bad tie", "Cannot find note before tie")


def scanner_at(revision: str):
    """`rlmusic/abc.py` as it was at `revision`, loaded as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:rlmusic/abc.py"], cwd=root, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "abc_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("abc_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["abc_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def compare(tunes: list[str], before) -> dict:
    """Confusion of the scanner's verdict against abc2midi's, now and `before`, over `tunes`."""
    found = validity.abc2midi_error_positions(tunes)
    counts = dict(tunes=len(tunes), abc2midi_invalid=0, false_accept=0, false_reject=0, false_accept_before=0,
                  false_reject_before=0, abc2midi_tie=0, scanner_tie=0, both_tie=0)
    distances = []
    missed: Counter = Counter()  # abc2midi's first error in the tunes the scanner passes
    for tune, errs in zip(tunes, found):
        headers = not validity.header_problems(tune)
        s = scan(tune)
        ok_abc2midi = headers and not errs
        ok_scan = headers and not s.problems
        ok_scan_before = headers and not before.scan(tune).problems
        counts["abc2midi_invalid"] += not ok_abc2midi
        counts["false_accept"] += ok_scan and not ok_abc2midi
        if ok_scan and errs:
            missed[re.sub(r"\d+", "N", errs[0][1])] += 1
        counts["false_reject"] += ok_abc2midi and not ok_scan
        counts["false_accept_before"] += ok_scan_before and not ok_abc2midi
        counts["false_reject_before"] += ok_abc2midi and not ok_scan_before
        tie_at = [at for at, msg in errs if any(e in msg for e in TIE_ERRORS)]
        scanner_at = [p.offset for p in s.problems if p.kind == "tie"]
        counts["abc2midi_tie"] += bool(tie_at)
        counts["scanner_tie"] += bool(scanner_at)
        if tie_at and scanner_at:
            counts["both_tie"] += 1
            distances.append(tie_at[0] - scanner_at[0])
    counts["mean_distance"] = sum(distances) / len(distances) if distances else None
    counts["missed"] = missed
    return counts


def row(name: str, c: dict) -> str:
    n = c["tunes"]
    recall = c["both_tie"] / c["abc2midi_tie"] if c["abc2midi_tie"] else float("nan")
    precision = c["both_tie"] / c["scanner_tie"] if c["scanner_tie"] else float("nan")
    dist = f"{c['mean_distance']:+.1f}" if c["mean_distance"] is not None else "-"
    def share(key: str) -> str:
        return f"{c[key] / n:.3f} ({c[key]})"

    return (f"| {name} | {n:,} | {c['abc2midi_invalid'] / n:.3f} | {share('false_accept_before')} | "
            f"**{share('false_accept')}** | {share('false_reject_before')} | {share('false_reject')} | "
            f"{c['abc2midi_tie']} | {recall:.3f} | {precision:.3f} | {dist} |")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", default="pretrained", help="run directory, or `pretrained` (the shipped model)")
    ap.add_argument("--num", type=int, default=600, help="tunes sampled at T=1.0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--before", default="c6f14ce", help="git revision of the scanner to compare with")
    args = ap.parse_args()
    if validity.abc2midi_path() is None:
        sys.exit("error: abc2midi is not installed (Debian package abcmidi)")

    from rlmusic.corpus import DEFAULT_SOURCES, load_corpus
    from rlmusic.rundir import load_model, shipped_model
    from rlmusic.sample import Sampler

    corpus = load_corpus(list(DEFAULT_SOURCES)).tunes
    checkpoint = shipped_model() if args.checkpoint == "pretrained" else Path(args.checkpoint)
    model, vocab, _ = load_model(checkpoint)
    sampled = [t.text for t in Sampler(model, vocab).generate(args.num, seed=args.seed)]
    before = scanner_at(args.before)
    print(f"| tunes | n | abc2midi invalid | scanner passes, abc2midi rejects: at {args.before} | now | "
          f"scanner rejects, abc2midi passes: at {args.before} | now | abc2midi tie errors | scanner finds (recall) | "
          "of its ties, abc2midi's too (precision) | abc2midi's position - the scanner's (chars) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {"corpus (cleaned)": compare(corpus, before),
               f"{args.checkpoint}, T=1.0, seed {args.seed}": compare(sampled, before)}
    for name, counts in results.items():
        print(row(name, counts))
    for name, counts in results.items():
        print(f"\nabc2midi's first error in the tunes the scanner passes, {name}: "
              + ", ".join(f"{msg} ({n})" for msg, n in counts["missed"].most_common(6)))


if __name__ == "__main__":
    main()
