"""How well a recipe generalises: train on three of the four default collections, score the fourth and miscFolk.

Held-out tunes of the training collections say how well a model knows its books; a collection it never read says
how well it knows folk music. This trains one `python -m rlmusic pretrain` run on every default collection but
`--holdout`, then reports its NLL (bits/char, whole tunes from a zero state, as `evaluate` scores `--data`) on all
the tunes of the held-out collection and of music21's `miscFolk` (185 tunes the default never reads). Tunes with
a character outside the model's vocabulary are skipped and counted.

    python benchmarks/cross_collection.py [--out runs/cross] [--config default] [--set KEY=VALUE ...]
    python benchmarks/cross_collection.py --checkpoint pretrained     # score a trained model only

`benchmarks/pretrain_recipe.py` runs this for every arm of the recipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

HOLDOUT = "oneills1850"  # 2,009 Irish dance tunes; the three left (Scottish, Irish-Scottish, German) are 2.5 M chars
OUTSIDE = "miscFolk"


def train_on_three(out: Path, config: str, sets: list[str], holdout: str = HOLDOUT) -> None:
    """A pretrain run on the default collections but `holdout` (resumed, or only found finished, if it exists)."""
    from rlmusic.corpus import DEFAULT_SOURCES

    sources = ",".join(s for s in DEFAULT_SOURCES if s != holdout)
    args = [x for o in [*sets, f"data.sources={sources}"] for x in ("--set", o)]
    subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--config", config, "--out", str(out), *args],
                   check=True)


def score(checkpoint: str | Path, holdout: str = HOLDOUT) -> dict:
    """NLL (bits/char) of a trained model on the held-out collection and on miscFolk, with the tunes skipped."""
    from rlmusic.corpus import load_corpus
    from rlmusic.evaluate import nll_bits_per_char
    from rlmusic.rundir import load_model, shipped_model

    model, vocab, _ = load_model(shipped_model() if str(checkpoint) == "pretrained" else checkpoint)
    row = {}
    for name, label in ((holdout, "fourth"), (OUTSIDE, "miscfolk")):
        tunes = load_corpus([name]).tunes
        bpc, skipped = nll_bits_per_char(model, vocab, tunes)
        row[f"{label}_bits_per_char"] = bpc
        row[f"{label}_tunes"] = len(tunes) - skipped
    return row


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/cross")
    ap.add_argument("--config", default="default")
    ap.add_argument("--holdout", default=HOLDOUT)
    ap.add_argument("--set", action="append", default=[], help="pretrain overrides (KEY=VALUE)")
    ap.add_argument("--checkpoint", help="score this model only (no training): the fourth is then not unseen")
    args = ap.parse_args()
    if args.checkpoint:
        print(json.dumps({"checkpoint": args.checkpoint, **score(args.checkpoint, args.holdout)}))
        return
    train_on_three(Path(args.out), args.config, args.set, args.holdout)
    print(json.dumps({"out": args.out, "holdout": args.holdout, **score(args.out, args.holdout)}))


if __name__ == "__main__":
    main()
