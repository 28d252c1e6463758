"""Measure a pretrained run and ship it as the package's model (rlmusic/pretrained/folk/) with its model card.

    python benchmarks/ship_model.py --run runs/folk [--num 200] [--dest rlmusic/pretrained/folk]

What is shipped: the newest checkpoint's model weights only (no optimizer slots: a third of the size; the run
directory itself keeps them for resuming), config.yaml, vocab.json, corpus.json, metrics.jsonl, and
MODEL_CARD.md. The card's figures are measured here: validation bits/char (from metrics.jsonl, the last
evaluation), the valid share of `--num` tunes sampled at T=1.0 (seed 0) by the abc2midi check, the training steps
and wall time (metrics.jsonl), the CPU. `card.json` holds the same figures for tests and tools. The destination is
written in a temporary folder and renamed into place, so a half-shipped model never replaces the old one.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from benchmarks.pretrain_recipe import cpu_name  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--run", required=True, help="a finished (or paused) pretrain run directory")
    ap.add_argument("--dest", default=str(Path(__file__).resolve().parents[1] / "rlmusic" / "pretrained" / "folk"))
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--note", default="", help="a paragraph for the card (why training stopped where it did...)")
    args = ap.parse_args()

    from rlmusic import validity
    from rlmusic.model import count_params
    from rlmusic.rundir import RunDir, load_model
    from rlmusic.sample import Sampler
    from rlmusic._tf import tf

    run = RunDir(args.run)
    model, vocab, cfg = load_model(run.path)
    step = run.latest_step()
    rows = [r for r in run.read_metrics() if r["step"] <= step]
    evals = [r for r in rows if "val_bits_per_char" in r]
    tunes = [t.text for t in Sampler(model, vocab).generate(args.num, temperature=1.0, seed=0)]
    problems = validity.check_tunes(tunes)
    corpus = json.loads((run.path / "corpus.json").read_text())
    card = {
        "steps": step,
        "val_bits_per_char": evals[-1]["val_bits_per_char"],
        "val_step": evals[-1]["step"],
        "valid_share_t1": sum(not p for p in problems) / len(tunes),
        "valid_check": validity.checker(),
        "sampled_tunes": len(tunes),
        "wall_hours": max(r.get("elapsed_s", 0) for r in rows) / 3600,
        "parameters": count_params(model),
        "cpu": cpu_name(),
        "train_tunes": corpus["train_tunes"],
        "set_aside_invalid": sum(corpus.get("set_aside_invalid", {}).values()),
        "val_tunes": corpus["val_tunes"],
        "date": date.today().isoformat(),
        "note": args.note,
    }
    dest = Path(args.dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        for name in ("config.yaml", "vocab.json"):
            shutil.copy(run.path / name, tmp / name)
        # corpus.json without the list of files read (paths of the machine that trained it): their count
        (tmp / "corpus.json").write_text(json.dumps({**corpus, "files": len(corpus["files"])}, indent=2) + "\n")
        (tmp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        ckpt = tmp / "checkpoints" / f"step-{step}"
        ckpt.mkdir(parents=True)
        tf.train.Checkpoint(model=model).write(str(ckpt / "ckpt"))
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "MODEL_CARD.md").write_text(model_card(card, cfg))
        tmp.chmod(0o755)  # mkdtemp makes it private; a package's data is readable by all
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(json.dumps({**card, "shipped_mb": size / 1e6}, indent=2))


def model_card(card: dict, cfg: dict) -> str:
    m, t, d = cfg["model"], cfg["train"], cfg["data"]
    return f"""# rlmusic/pretrained/folk

A character-level LSTM language model of folk tunes in ABC notation, trained with `python -m rlmusic pretrain
--config folk` (configs/pretrain/folk.yaml) and shipped so that `finetune`, `sample` and `evaluate` have a model
to start from (`--checkpoint pretrained`, the default).

| | |
|---|---|
| model | Embedding {m['embedding_dim']} -> LSTM {m['units']} x {m['layers']} (dropout {m['dropout']}) -> Dense(vocab); {card['parameters']:,} parameters |
| data | the ABC collections bundled with music21 ({', '.join(d['sources'])}); {card['train_tunes']:,} training tunes after {card['set_aside_invalid']} that fail the abc2midi check were set aside; {card['val_tunes']} held-out tunes |
| training | {card['steps']:,} steps of {t['batch_size']} rows x {t['seq_length']} characters, rows reading whole tunes with the state carried across windows; Adam {t['learning_rate']}, warm-up {t['warmup_steps']}, cosine to {t['min_lr_fraction']} of the peak over {t['steps']:,} steps |
| hardware | 2 CPU cores: {card['cpu']} |
| wall time | {card['wall_hours']:.2f} h (evaluation and checkpoints included) |
| validation | **{card['val_bits_per_char']:.3f} bits/char** on whole held-out tunes (step {card['val_step']:,}) |
| valid ABC | **{card['valid_share_t1']:.1%}** of {card['sampled_tunes']} tunes sampled at temperature 1.0 (seed 0) pass the {card['valid_check']} check (headers X T M K, no Error line) |
| measured | {card['date']}, `python benchmarks/ship_model.py --run runs/folk` |

{card['note']}

Targets (issue "A model worth fine-tuning"): >= 95 % valid at T=1.0 and <= 1.4 bits/char. The figures above are
what this checkpoint reaches; the Measurements page of the docs (docs/measurements.md) says what limits them.

Only the model weights are shipped (no optimizer state). To train further, rerun the config with more steps
into a run directory of your own.
"""


if __name__ == "__main__":
    main()
