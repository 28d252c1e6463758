"""Time of `evaluate --num N` with every metric, split into sampling and measuring, on this machine.

    python benchmarks/evaluate_time.py [--checkpoint pretrained] [--num 200]

Target: the metrics (rule metrics with abc2midi, the realness metrics against the four default collections)
take under two minutes beyond the sampling, on 2 cores.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from benchmarks.pretrain_recipe import cpu_name  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--num", type=int, default=200)
    args = ap.parse_args()

    from rlmusic import evaluate, validity
    from rlmusic.corpus import DEFAULT_SOURCES
    from rlmusic.rundir import load_model, shipped_model
    from rlmusic.sample import Sampler

    checkpoint = shipped_model() if args.checkpoint == "pretrained" else Path(args.checkpoint)
    model, vocab, _ = load_model(checkpoint)
    start = time.perf_counter()
    Sampler(model, vocab).generate(args.num, seed=0)
    sampling = time.perf_counter() - start
    opts = evaluate.EvaluateConfig(data=list(DEFAULT_SOURCES), checkpoint=[str(checkpoint)], num=args.num,
                                   checker=validity.resolve_checker("auto"))
    start = time.perf_counter()
    evaluate.run(opts, log=lambda m: None)
    total = time.perf_counter() - start
    print(json.dumps({"cpu": cpu_name(), "num": args.num, "sampling_s": round(sampling, 1),
                      "evaluate_s": round(total, 1), "beyond_sampling_s": round(total - sampling, 1)}))


if __name__ == "__main__":
    main()
