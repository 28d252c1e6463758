"""The pretraining recipe, one change at a time: validation bits/char and the valid share of sampled tunes.

Each arm is a `python -m rlmusic pretrain` run of the same model and steps (the default preset unless --config
says otherwise), one after another on the same machine; each is then scored on the same held-out tunes
(whole tunes, from a zero state) and by sampling `--num` tunes at T=1.0 (seed 0) through the abc2midi check.

    python benchmarks/pretrain_recipe.py [--out runs/recipe] [--num 1000] [--arms baseline,valid_only,tunes]

Arms (cumulative, each adds one change to the one before):
    baseline    random 128-char windows on every cleaned tune (the recipe before data.windows/valid_only)
    valid_only  + training tunes that fail the validity check set aside
    tunes       + rows that read whole tunes with the state carried across windows (the current default)
Arms already trained in --out are only re-scored (pretrain resumes and finds them finished).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARMS = {
    "baseline": ["data.valid_only=false", "data.windows=random"],
    "valid_only": ["data.valid_only=true", "data.windows=random"],
    "tunes": ["data.valid_only=true", "data.windows=tunes"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/recipe")
    ap.add_argument("--config", default="default")
    ap.add_argument("--num", type=int, default=1000, help="tunes sampled per arm (1,000: a share +-1.5 %% s.e.)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every arm")
    args = ap.parse_args()

    from rlmusic import validity
    from rlmusic.devices import cpu_name
    from rlmusic.rundir import RunDir, load_model
    from rlmusic.sample import Sampler

    rows = []
    for arm in args.arms.split(","):
        out = Path(args.out) / arm
        sets = [x for o in ARMS[arm] + args.set for x in ("--set", o)]
        subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--config", args.config, "--out", str(out),
                        *sets], check=True)
        metrics = RunDir(out).read_metrics()
        bpc = [r["val_bits_per_char"] for r in metrics if "val_bits_per_char" in r][-1]
        wall = [r["elapsed_s"] for r in metrics if "elapsed_s" in r][-1]
        model, vocab, _ = load_model(out)
        tunes = [t.text for t in Sampler(model, vocab).generate(args.num, temperature=1.0, seed=0)]
        problems = validity.check_tunes(tunes)
        rows.append({"arm": arm, "val_bits_per_char": bpc, "valid": sum(not p for p in problems) / len(tunes),
                     "wall_min": wall / 60, "check": validity.checker()})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{cpu_name()}, {args.num} tunes at T=1.0 per arm\n")
    print("| arm | val bits/char | valid | wall (min) |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arm']} | {r['val_bits_per_char']:.3f} | {r['valid']:.3f} | {r['wall_min']:.1f} |")


if __name__ == "__main__":
    main()
