"""Which keys and meters a model writes: the share of each K: and M: value among --num tunes per run.

    python benchmarks/header_shares.py RUN [RUN ...] [--num 200] [--seed 0] [--json FILE]

RUN is a run directory or `pretrained`. Tunes are sampled as `sample` draws them by default (under the grammar's
mask, T=1.0). A fine-tuned policy that moves its tunes into the key where its rewards come easiest shows here first
(`neutral_headers` in docs/finetuning.md); the discriminators then tell its tunes from real ones by it.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402 (the repository on sys.path)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()

    from rlmusic.neutral import header_value
    from rlmusic.rundir import load_model, shipped_model
    from rlmusic.sample import Sampler

    out = {}
    for run in args.runs:
        model, vocab, _ = load_model(shipped_model() if run == "pretrained" else run)
        tunes = [t.text for t in Sampler(model, vocab).generate(args.num, seed=args.seed, constrain="syntax")]
        out[run] = {f: {v: n / len(tunes) for v, n in collections.Counter(header_value(t, f) for t in tunes)
                        .most_common()} for f in ("K", "M")}
    print(hardware_line())
    for field in ("K", "M"):
        values = list(dict.fromkeys(v for r in out.values() for v in list(r[field])[:6]))
        print(f"\n| {field}: | " + " | ".join(args.runs) + " |\n|---|" + "---:|" * len(args.runs))
        for v in values:
            print(f"| {v or '(none)'} | " + " | ".join(f"{out[r][field].get(v, 0.0):.3f}" for r in args.runs) + " |")
    if args.json:
        from rlmusic.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(
            {**hardware(), "command": "python benchmarks/header_shares.py " + " ".join(sys.argv[1:]), "runs": out},
            indent=1))


if __name__ == "__main__":
    main()
