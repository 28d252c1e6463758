"""Where the invalid tunes are: the same models sampled at full temperature and with the tail of each step's
distribution cut (nucleus sampling), over several seeds, one table.

    python benchmarks/nucleus.py [--checkpoints pretrained runs/designs/form_soft-seed0] [--top-p 1.0 0.95 0.9]
        [--seeds 0 1 2] [--num 200] [--data oneills1850 ryansMammoth airdsAirs essenFolksong] [--json FILE]

For each seed and each `--top-p`, one `evaluate` over every checkpoint (T=1.0, `--num` tunes, against the same
real reference tunes), so the columns of a seed share their corpus sample. The table gives, per metric, the mean
+- standard deviation over the seeds of each (checkpoint, top-p) column, and below it the commonest first
problems of the invalid tunes. kl_to_reference is not shown: evaluate measures the model's own distribution, not
the truncated one the tunes were drawn from (cutting a tail of mass m costs up to -ln(1 - m) nats per character).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from reward_designs import SHOWN, cell, evaluate_runs, print_reasons  # noqa: E402  (benchmarks/ is no package)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--checkpoints", nargs="+", default=["pretrained"], help="run directories; `pretrained`: the "
                    "shipped model (its column is named `folk`)")
    ap.add_argument("--top-p", nargs="+", type=float, default=[1.0, 0.95, 0.9])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--data", nargs="+", default=["oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong"])
    ap.add_argument("--json", help="write every column of every seed here")
    args = ap.parse_args()
    if any(not 0 < p <= 1 for p in args.top_p):
        ap.error("--top-p: each value must be in (0, 1]")

    from rlmusic.rundir import shipped_model

    checkpoints = [shipped_model() if c == "pretrained" else Path(c) for c in args.checkpoints]
    columns: dict[str, list[dict]] = {"corpus": []}
    for seed in args.seeds:
        for i, top_p in enumerate(args.top_p):
            # without the mask: where the model's own invalid tunes come from
            real, found = evaluate_runs(checkpoints, ["none"] * len(checkpoints), None, args.data, args.num, seed,
                                        top_p)
            if i == 0:
                columns["corpus"].append(real)
            for checkpoint, metrics in zip(checkpoints, found):
                columns.setdefault(f"{Path(checkpoint).name}, top-p {top_p:g}", []).append(metrics)

    shown = [k for k in SHOWN if k != "kl_to_reference"]
    print("| metric | " + " | ".join(columns) + " |\n|---|" + "---:|" * len(columns))
    for key in shown:
        print(f"| {key} | " + " | ".join(cell([c.get(key) for c in cols]) for cols in columns.values()) + " |")
    print(f"\n{len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}); mean +- std over seeds; T=1.0; "
          f"--num {args.num}")
    print_reasons(columns)
    if args.json:
        Path(args.json).write_text(json.dumps(columns, indent=2))


if __name__ == "__main__":
    main()
