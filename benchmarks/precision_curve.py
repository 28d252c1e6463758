"""Mixed precision against float32: is the loss curve the same within seed-to-seed noise, and how much faster?

Three `python -m rlmusic pretrain` runs of the same preset (default: the default preset, `--steps` steps), one
after another on this machine: float32 with seed 0, float32 with seed 1 (the noise: what changing only the seed
does), and the mixed precision `train.precision=auto` picks here (mixed_bfloat16 on a CPU with AVX512-BF16 or
AMX, mixed_float16 on a GPU) with seed 0. Prints the training loss and validation bits/char at each logged step,
the largest float32-vs-mixed gap beside the largest seed-0-vs-seed-1 gap, and the ratio of characters/s.

    python benchmarks/precision_curve.py [--out runs/precision] [--steps 600] [--config default]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/precision")
    ap.add_argument("--config", default="default")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    args = ap.parse_args()

    from rlmusic.devices import cpu_name, resolve_device, resolve_precision
    from rlmusic.rundir import RunDir

    mixed = resolve_precision("auto", resolve_device("auto"))
    if mixed == "float32":
        print(f"{cpu_name()}: precision auto is float32 here (no AVX512-BF16/AMX, no GPU): nothing to compare")
        return
    arms = {"float32 seed 0": ("float32", 0), "float32 seed 1": ("float32", 1), f"{mixed} seed 0": (mixed, 0)}
    curves = {}
    for name, (precision, seed) in arms.items():
        out = Path(args.out) / f"{precision}-seed{seed}"
        sets = [f"train.precision={precision}", f"train.seed={seed}", f"train.steps={args.steps}",
                "train.eval_every=200", "train.log_every=50", *args.set]
        subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--config", args.config, "--out", str(out),
                        *[x for s in sets for x in ("--set", s)]], check=True)
        rows = RunDir(out).read_metrics()
        curves[name] = {"loss": {r["step"]: r["bits_per_char"] for r in rows if "bits_per_char" in r},
                        "val": {r["step"]: r["val_bits_per_char"] for r in rows if "val_bits_per_char" in r},
                        "cps": [r["chars_per_sec"] for r in rows if "chars_per_sec" in r]}
    names = list(arms)
    print(f"CPU: {cpu_name()}; preset {args.config}, {args.steps} steps\n")
    print("| step | " + " | ".join(f"{n}: train bpc" for n in names) + " | " + " | ".join(f"{n}: val bpc" for n in names)
          + " |\n|---:|" + "---:|" * (2 * len(names)))
    for step in sorted(curves[names[0]]["loss"]):
        cells = [f"{curves[n]['loss'].get(step, float('nan')):.3f}" for n in names]
        cells += [f"{curves[n]['val'][step]:.3f}" if step in curves[n]["val"] else "" for n in names]
        print(f"| {step} | " + " | ".join(cells) + " |")

    def gap(a, b, key):
        common = sorted(set(curves[a][key]) & set(curves[b][key]))
        return max(abs(curves[a][key][s] - curves[b][key][s]) for s in common)

    for key, what in (("loss", "training bits/char (each logged mean of 50 steps)"), ("val", "validation bits/char")):
        print(f"\nlargest gap in {what}: float32 vs {mixed} {gap(names[0], names[2], key):.4f}; "
              f"seed 0 vs seed 1 (noise) {gap(names[0], names[1], key):.4f}")
    steady = {n: sorted(curves[n]["cps"])[len(curves[n]["cps"]) // 2] for n in names}  # median: compile excluded
    print(f"characters/s (median of logged windows): float32 {steady[names[0]]:,.0f}, {mixed} "
          f"{steady[names[2]]:,.0f} ({steady[names[2]] / steady[names[0]]:.2f}x)")


if __name__ == "__main__":
    main()
