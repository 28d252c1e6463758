"""The pretraining recipe, one change at a time: held-out and cross-collection bits/char, and the valid share.

Each arm is a `python -m rlmusic pretrain` run of the same budget (the default preset unless --config says
otherwise), one after another on the same machine, judged on three figures:

- `val`: bits/char on the same held-out tunes of the four default collections (whole tunes, from a zero state);
- `fourth` and `miscfolk`: a second run of the arm trained on three collections only
  (`benchmarks/cross_collection.py`), scored on every tune of the fourth (oneills1850) and on music21's miscFolk,
  which the default never reads. The recipe that generalises wins, not the one that fits;
- `valid`: `--num` tunes sampled at T=1.0 (seed 0, no mask) through the validity check.

    python benchmarks/pretrain_recipe.py [--out runs/recipe] [--num 200] [--arms tunes,dropout,...]
        [--results benchmarks/results/pretrain_recipe.json]

Arms (each one change against `tunes`, the current default; the first two are the history that led to it):
    baseline      random 128-char windows on every cleaned tune
    valid_only    + training tunes that fail the validity check set aside
    tunes         + rows that read whole tunes with the state carried across windows (the default)
    dropout       tunes + dropout 0.3 after each LSTM layer
    weight_decay  tunes + AdamW weight decay 0.1
    transpose     tunes + every training tune read in all 12 keys (`data.transpose: all`)
    wider         tunes + 768 units instead of 512
    deeper        tunes + a second LSTM layer
    dropout_transpose  tunes + dropout 0.3 + transposition: the two that lowered the cross-collection figure most
Arms already trained in --out are only re-scored (pretrain resumes and finds them finished); each arm's row is
added to --results as it finishes, so an interrupted benchmark loses at most the arm it was running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from cross_collection import score as cross_score  # noqa: E402
from cross_collection import train_on_three  # noqa: E402

DEFAULT = ["data.valid_only=true", "data.windows=tunes"]
ARMS = {
    "baseline": ["data.valid_only=false", "data.windows=random"],
    "valid_only": ["data.valid_only=true", "data.windows=random"],
    "tunes": DEFAULT,
    "dropout": DEFAULT + ["model.dropout=0.3"],
    "weight_decay": DEFAULT + ["train.weight_decay=0.1"],
    "transpose": DEFAULT + ["data.transpose=all"],
    "wider": DEFAULT + ["model.units=768"],
    "deeper": DEFAULT + ["model.layers=2"],
    # the two that generalised best, together (configs/pretrain/folk_transposed.yaml is the folk model with both)
    "dropout_transpose": DEFAULT + ["model.dropout=0.3", "data.transpose=all"],
}


def last(metrics: list[dict], key: str):
    return [r[key] for r in metrics if key in r][-1]


def run_arm(arm: str, out: Path, config: str, sets: list[str], num: int) -> dict:
    from rlmusic import validity
    from rlmusic.rundir import RunDir, load_model
    from rlmusic.sample import Sampler

    overrides = ARMS[arm] + sets
    subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--config", config, "--out", str(out / arm),
                    *[x for o in overrides for x in ("--set", o)]], check=True)
    train_on_three(out / f"{arm}-three", config, overrides)
    metrics = RunDir(out / arm).read_metrics()
    model, vocab, _ = load_model(out / arm)
    tunes = [t.text for t in Sampler(model, vocab).generate(num, temperature=1.0, seed=0)]
    problems = validity.check_tunes(tunes)
    return {"arm": arm, "overrides": overrides, "val_bits_per_char": last(metrics, "val_bits_per_char"),
            "train_bits_per_char": last(metrics, "bits_per_char"), **cross_score(out / f"{arm}-three"),
            "valid": sum(not p for p in problems) / len(tunes), "tunes": num, "check": validity.checker(),
            "wall_min": last(metrics, "elapsed_s") / 60,
            "wall_three_min": last(RunDir(out / f"{arm}-three").read_metrics(), "elapsed_s") / 60}


def save(rows: list[dict], path: Path, header: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**header, "arms": rows}, indent=1))
    os.replace(tmp, path)


def table(rows: list[dict]) -> str:
    out = ["| arm | val bits/char | fourth (oneills1850) | miscFolk | train bits/char | valid | wall (min) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['arm']} | {r['val_bits_per_char']:.3f} | {r['fourth_bits_per_char']:.3f} | "
                   f"{r['miscfolk_bits_per_char']:.3f} | {r['train_bits_per_char']:.3f} | {r['valid']:.3f} | "
                   f"{r['wall_min']:.1f} + {r['wall_three_min']:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/recipe")
    ap.add_argument("--config", default="default")
    ap.add_argument("--num", type=int, default=200, help="tunes sampled per arm (200: a share +-3 %% s.e.)")
    ap.add_argument("--arms", default="tunes,transpose,dropout,weight_decay,deeper,wider")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every arm")
    ap.add_argument("--results", default="benchmarks/results/pretrain_recipe.json")
    args = ap.parse_args()

    path = Path(args.results)
    old = json.loads(path.read_text())["arms"] if path.exists() else []
    header = {**hardware(), "config": args.config, "sets": args.set, "command": "python " + " ".join(sys.argv)}
    rows = [r for r in old if r["arm"] not in args.arms.split(",")]
    for arm in args.arms.split(","):
        if arm not in ARMS:
            sys.exit(f"error: --arms: unknown arm {arm!r} (known: {', '.join(ARMS)})")
        rows.append(run_arm(arm, Path(args.out), args.config, args.set, args.num))
        print(json.dumps(rows[-1]), flush=True)
        save(rows, path, header)
    print(f"\n{hardware_line()}; {args.num} tunes at T=1.0 per arm\n")
    print(table(rows))


if __name__ == "__main__":
    main()
