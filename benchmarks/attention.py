"""Attention or not, at equal training time: validation bits/char, chars/s, and what the sampled tunes look like.

Two models with the default configuration, one plain and one with `model.attention_window`, are trained from
the same initial seed on the same batches of the embedded corpus, in one process, taking turns step by step, each
until it has used `--minutes` of its own step time. Taking turns means both see the same machine load, so the
comparison holds on a busy machine too (the absolute chars/s do not). The learning rate is constant after the
warm-up (no schedule tied to a step count that the two would reach at different times).

With `--init RUN` both start from a pretrained plain model instead (the attention model gets its weights, and
its attention starts as a no-op): what attention adds on top of a trained LSTM, for the same extra training time.

Then for each model: validation bits/char on the held-out tunes, `--num` sampled tunes (T=1.0) checked for
validity (abc2midi when installed, else the scanner) and for structure: the share of tunes with two strains and
the share of those whose second strain answers the first (rlmusic/structure.py); the same structure figures for
held-out corpus tunes.

    python benchmarks/attention.py [--minutes 10] [--window 128] [--num 200] [--init runs/default] [--json out.json]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic._tf import tf  # noqa: E402
from rlmusic.evaluate import tune_metrics  # noqa: E402
from rlmusic.model import ModelConfig, build_model, count_params  # noqa: E402
from rlmusic.data import tune_sequences, val_batches, windows_dataset  # noqa: E402
from rlmusic.pretrain import PretrainConfig, TrainConfig, Trainer, prepare_data  # noqa: E402
from rlmusic.rundir import load_model  # noqa: E402
from rlmusic.runlog import progress  # noqa: E402
from rlmusic.sample import Sampler  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--minutes", type=float, default=10.0, help="training time per model")
    ap.add_argument("--window", type=int, default=128, help="attention window (characters)")
    ap.add_argument("--init", help="start both models from this pretrained run (a plain LSTM of the default size)")
    ap.add_argument("--lr", type=float, default=3e-3, help="learning rate (constant after the warm-up)")
    ap.add_argument("--num", type=int, default=200, help="sampled tunes per model")
    ap.add_argument("--eval-chars", type=int, default=200_000)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    cfg = PretrainConfig()
    data = prepare_data(cfg, log=lambda m: print(m, file=sys.stderr))
    vocab, train_ids, val_tunes = data.vocab, data.train_stream(), data.val
    tcfg = TrainConfig(min_lr_fraction=1.0, steps=10**9, learning_rate=args.lr)  # constant after warm-up
    init = None
    if args.init:
        init, init_vocab, _ = load_model(args.init)
        if init_vocab != vocab:
            sys.exit(f"error: --init {args.init}: not the embedded corpus' vocabulary ({init_vocab.diff(vocab)})")
    arms = {"LSTM": ModelConfig(), f"LSTM + attention ({args.window})": ModelConfig(attention_window=args.window)}
    runs = {}
    for name, mcfg in arms.items():
        tf.keras.utils.set_random_seed(0)
        model = build_model(len(vocab), mcfg)
        if init is not None:
            for layer in ("embedding", "lstms", "head"):
                for mine, theirs in zip(tf.nest.flatten(getattr(model, layer)), tf.nest.flatten(getattr(init, layer))):
                    for a, b in zip(mine.weights, theirs.weights):
                        a.assign(b)
        trainer = Trainer(model, tcfg)
        batches = iter(windows_dataset(train_ids, tcfg.batch_size, tcfg.seq_length, tcfg.seed, 0))
        trainer.train_step(*next(batches))  # compiles; not timed
        runs[name] = {"trainer": trainer, "batches": batches, "seconds": 0.0, "steps": 1}

    budget = args.minutes * 60
    bar = progress(total=round(budget * len(runs)), desc="training both", unit="s")
    while any(r["seconds"] < budget for r in runs.values()):
        for r in runs.values():
            if r["seconds"] >= budget:
                continue
            x, y = next(r["batches"])
            start = time.perf_counter()
            float(r["trainer"].train_step(x, y))
            spent = time.perf_counter() - start
            r["seconds"] += spent
            r["steps"] += 1
        bar.n = round(sum(min(r["seconds"], budget) for r in runs.values()))
        bar.refresh()
    bar.close()

    val = val_batches(tune_sequences(vocab, val_tunes), args.eval_chars)
    results = {}
    corpus_metrics = tune_metrics(val_tunes[: args.num * 2], use_abc2midi=True)
    for name, r in runs.items():
        model = r["trainer"].model
        tunes = [t.text for t in Sampler(model, vocab).generate(args.num, max_length=1500, seed=0)]
        m = tune_metrics(tunes, use_abc2midi=True)
        results[name] = {
            "params": count_params(model), "steps": r["steps"],
            "chars_per_sec": (r["steps"] - 1) * tcfg.batch_size * tcfg.seq_length / r["seconds"],
            "val_bits_per_char": r["trainer"].val_bits_per_char(val),
            "valid_rate": m["valid_rate"], "valid_check": m["valid_check"],
            "two_strain_tunes": m["two_strain_tunes"], "second_strain_answers": m["second_strain_answers"],
            "mean_notes": m["mean_notes"]}
    results["corpus (held-out tunes)"] = {
        "valid_rate": corpus_metrics["valid_rate"], "valid_check": corpus_metrics["valid_check"],
        "two_strain_tunes": corpus_metrics["two_strain_tunes"],
        "second_strain_answers": corpus_metrics["second_strain_answers"], "mean_notes": corpus_metrics["mean_notes"]}

    def cell(v, fmt):
        return "" if v is None else format(v, fmt)

    start = f"from {args.init}" if args.init else "from scratch"
    print(f"equal training time {start}: {args.minutes:g} min per model at lr {args.lr:g}; "
          f"{args.num} sampled tunes each (T=1.0)")
    print("| model | params | steps | chars/s | val bits/char | valid | two strains | B answers A | notes/tune |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {cell(r.get('params'), ',')} | {cell(r.get('steps'), ',')} | "
              f"{cell(r.get('chars_per_sec'), ',.0f')} | {cell(r.get('val_bits_per_char'), '.3f')} | "
              f"{cell(r['valid_rate'], '.3f')} | {cell(r['two_strain_tunes'], '.3f')} | "
              f"{cell(r['second_strain_answers'], '.3f')} | {cell(r['mean_notes'], '.1f')} |")
    print(f"validity checked with {results['LSTM']['valid_check']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
