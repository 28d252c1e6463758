"""A synthetic listener for the preference loop: the rating file, the reward model, measured without a person.

    python benchmarks/preferences.py [--pairs 500] [--seeds 0 1 2] [--out runs/preferences]
        [--json benchmarks/results/preferences.json]

The listener's hidden rule: of two tunes it prefers the one with the higher `cadences` + `phrase_repeats` (strains
that end on the tonic, bars that come back within a strain), and has no preference when they differ by less than
0.05. The script

1. draws --pairs pairs from the shipped model under the grammar's mask (as `rlmusic rate` does, without the sheet
   music and audio a person needs) and labels them
   through the rating folder's own code (rlmusic.rate.Ratings.record) into OUT/preferences.jsonl: the file a
   person would have made on the rating page;
2. per seed, fits the reward model (`rlmusic reward-model`: Bradley-Terry on the shipped network's features, 20 %
   of the pairs held out, the split drawn by the seed) and reports how often it ranks the held-out pairs with a
   winner as the rule does (the issue's target: at least 0.85), mean +- std over the seeds.

Fine-tuning on the result (PPO with `rewards.preference`, DPO with `agent=dpo`) is a `finetune` run each, as
docs/tutorials/your-taste.md shows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402 (the repository on sys.path)

TIE = 0.05


def rule(tunes: list[str]) -> np.ndarray:
    """The hidden taste: cadences + phrase_repeats of each tune (a rule that does not apply scores 0)."""
    from rlmusic.rewards import scan_all, score

    scans = scan_all(tunes)
    total = np.zeros(len(tunes))
    for name in ("cadences", "phrase_repeats"):
        total += [s or 0.0 for s in score(name, tunes, scans=scans)]
    return total


def label(folder: Path, pairs: int, log=print) -> list[dict]:
    """Draw the pairs (resumed if the folder has them) and record the listener's choice of each."""
    from rlmusic.rate import Ratings, draw_pairs
    from rlmusic.rundir import load_model, shipped_model

    ratings = Ratings(folder, model="pretrained")
    if len(ratings.pairs) < pairs:
        model, vocab, _ = load_model(shipped_model())
        draw_pairs(ratings, model, vocab, pairs, seed=0, log=log, render=False, constrain="syntax")
    a = rule([p[0] for p in ratings.pairs[:pairs]])
    b = rule([p[1] for p in ratings.pairs[:pairs]])
    for i in range(pairs):
        if i not in ratings.done:
            ratings.record(i, "none" if abs(a[i] - b[i]) < TIE else "a" if a[i] > b[i] else "b")
    return [c for c in ratings.choices if c["pair"] < pairs]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/preferences")
    ap.add_argument("--json")
    args = ap.parse_args()

    from rlmusic import preference
    from rlmusic.rundir import shipped_model

    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    choices = label(folder, args.pairs, log=lambda m: print(m, file=sys.stderr))
    kinds = {k: sum(c["choice"] == k for c in choices) for k in ("a", "b", "none")}
    rows = []
    for seed in args.seeds:
        model = preference.train(choices, shipped_model(), seed=seed, log=lambda m: print(m, file=sys.stderr))
        rows.append({"seed": seed, "heldout_accuracy": model.heldout_accuracy, "heldout_pairs": model.heldout_pairs})
        model.save(folder / f"rm-seed{seed}")
    acc = [r["heldout_accuracy"] for r in rows]
    print(hardware_line())
    print(f"{len(choices)} pairs labelled by the rule (a {kinds['a']}, b {kinds['b']}, none {kinds['none']})")
    print(f"held-out agreement with the rule: {np.mean(acc):.3f} +- {np.std(acc):.3f} over {len(acc)} seeds "
          f"({rows[0]['heldout_pairs']} decided pairs each); target >= 0.85")
    if args.json:
        from rlmusic.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps({
            **hardware(), "command": "python benchmarks/preferences.py " + " ".join(sys.argv[1:]),
            "pairs": len(choices), "choices": kinds, "seeds": rows,
            "mean_accuracy": float(np.mean(acc)), "std_accuracy": float(np.std(acc))}, indent=1))


if __name__ == "__main__":
    main()
