"""Dense credit or not: two fine-tuning runs alike in everything but `dense_coef` (same model, seed, iterations).

    python benchmarks/dense_credit.py [--checkpoint pretrained] [--iterations 30] [--dense 0.5] [--out runs/dense]

Both runs go side by side (one process each, sharing the cores equally). Reported: the valid rate per iteration
(the scanner's, as logged), and at the end the share of 200 tunes sampled at T=1.0 (seed 0) from each run that
pass the abc2midi check; the curves go to benchmarks/results/dense_credit.png.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from benchmarks.pretrain_recipe import cpu_name  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--dense", type=float, default=0.5)
    ap.add_argument("--out", default="runs/dense")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()

    arms = {"end of tune only": 0.0, f"dense credit x{args.dense:g}": args.dense}
    procs = {}
    for name, coef in arms.items():
        out = Path(args.out) / ("dense" if coef else "plain")
        sets = [f"iterations={args.iterations}", f"dense_coef={coef}", "checkpoint_every=10", *args.set]
        procs[name] = (out, subprocess.Popen(
            [sys.executable, "-m", "rlmusic", "finetune", "--checkpoint", args.checkpoint, "--out", str(out),
             *[x for s in sets for x in ("--set", s)]], stderr=subprocess.DEVNULL))
    for name, (_, proc) in procs.items():
        if proc.wait() != 0:
            sys.exit(f"error: the {name} run failed (exit {proc.returncode})")

    from rlmusic import validity
    from rlmusic.rundir import RunDir, load_model
    from rlmusic.plots import figure_png, new_figure
    from rlmusic.files import atomic_write_bytes
    from rlmusic.sample import Sampler

    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    print(f"{cpu_name()}; {args.iterations} iterations each; valid rate (scanner) per iteration, then abc2midi on "
          f"{args.num} sampled tunes\n")
    print("| run | valid (first 5 it.) | valid (last 5 it.) | sampled, abc2midi | KL |\n|---|---:|---:|---:|---:|")
    for name, (out, _) in procs.items():
        rows = RunDir(out).read_metrics()
        valid = [r["valid_rate"] for r in rows if r.get("valid_rate") is not None]
        ax.plot([r["step"] for r in rows if r.get("valid_rate") is not None], valid, label=name)
        model, vocab, _ = load_model(out)
        tunes = [t.text for t in Sampler(model, vocab).generate(args.num, seed=0)]
        share = sum(not p for p in validity.check_tunes(tunes)) / len(tunes)
        first, last = sum(valid[:5]) / 5, sum(valid[-5:]) / 5
        print(f"| {name} | {first:.3f} | {last:.3f} | {share:.3f} | {rows[-1]['kl']:.3f} |")
    ax.set(xlabel="iteration", ylabel="valid rate (scanner)", title="fine-tuning: dense credit or not")
    ax.legend()
    atomic_write_bytes(Path(__file__).resolve().parent / "results" / "dense_credit.png", figure_png(fig))


if __name__ == "__main__":
    main()
