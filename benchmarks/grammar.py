"""The ABC grammar (rlmusic/grammar.py) measured: against abc2midi both ways, what its mask costs the shipped
model's tunes, and what it costs in speed.

    python benchmarks/grammar.py recall                      # corpus tunes abc2midi reads: the share accepted
    python benchmarks/grammar.py samples [--num 1000] [--seeds 0 1 2]   # shipped model, masked vs unmasked
    python benchmarks/grammar.py speed [--num 256] [--iterations 3]     # sampling and collection, masked vs not
    python benchmarks/grammar.py random [--num 1000]          # random walks under the mask: abc2midi's verdict

`recall`: of the four default collections' tunes (cleaned, as pretraining reads them) that abc2midi reads without
an error, the share the grammar accepts (target >= 0.995), with the scanner's verdict beside it, and the first
rejected character of the tunes it refuses. `samples`: the shipped model at T=1.0, `--num` tunes per seed drawn
with the mask (`--constrain syntax`) and without, each judged by abc2midi and by `evaluate`'s metrics against as
many real tunes (mean +- standard deviation over the seeds); of the masked tunes, the share abc2midi rejects (the
grammar's false accepts, target <= 0.005); and the KL of the masked to the unmasked distribution per character,
-mean log(mass of the allowed characters), over the masked tunes. `speed`: tunes/s of the sampler with and
without the mask in one process (the mask's tables cold, then warm), and seconds per fine-tuning collection (the
default preset's 64 tunes) with and without the environments' masks. `random`: `--num` tunes written by a policy
that draws uniformly among the allowed characters (the shipped model's vocabulary, a reel's header as primer, at
most 400 characters): the corners of the grammar no model goes to but a policy in training might; the share
abc2midi rejects (false accepts) and why. Each writes benchmarks/results/grammar_<part>.json.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("valid_rate", "mean_notes", "hit_max_length", "repeat_sign_tunes", "two_strain_tunes", "aabb_tunes",
         "notes_not_in_key", "notes_excessively_repeated", "starts_with_tonic", "ends_with_tonic", "leaps_resolved",
         "unique_max_note", "unique_min_note", "notes_in_repeated_motif", "autocorrelation_lag1",
         "discriminator_text", "discriminator_features")


def machine() -> str:
    from rlmusic.devices import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


def corpus_tunes() -> list[str]:
    from rlmusic.corpus import DEFAULT_SOURCES, load_corpus

    return load_corpus(list(DEFAULT_SOURCES)).tunes


def recall() -> dict:
    from rlmusic import validity
    from rlmusic.abc import scan
    from rlmusic.grammar import AbcGrammar

    grammar = AbcGrammar()
    tunes = corpus_tunes()
    errors = validity.abc2midi_errors(tunes)
    clean = [t for t, e in zip(tunes, errors) if not e and not validity.header_problems(t)]
    start = time.perf_counter()
    refused = [(t, grammar.first_error(t)) for t in clean]
    seconds = time.perf_counter() - start
    refused = [(t, at) for t, at in refused if at is not None]
    scanner_refused = sum(1 for t in clean if scan(t).problems)
    where = Counter(repr(t[at:at + 1] or "end") for t, at in refused)
    out = {"machine": machine(), "corpus_tunes": len(tunes), "abc2midi_clean": len(clean),
           "grammar_accepts": 1 - len(refused) / len(clean), "scanner_accepts": 1 - scanner_refused / len(clean),
           "grammar_ms_per_tune": 1000 * seconds / len(clean), "refused_at": dict(where.most_common(12))}
    print(f"corpus: {len(tunes):,} tunes, {len(clean):,} read by abc2midi without an error")
    print(f"grammar accepts {out['grammar_accepts']:.4f} of them ({len(refused)} refused); the scanner "
          f"{out['scanner_accepts']:.4f}; {out['grammar_ms_per_tune']:.2f} ms per tune")
    print("first refused character:", ", ".join(f"{k} ({n})" for k, n in where.most_common(12)))
    return out


def mask_kl(model, vocab, tunes: list[str], primer: str) -> float:
    """Mean over the characters of `tunes` (drawn under the mask) of -log(the unmasked model's mass on the allowed
    characters): KL(masked || unmasked) per character, as sampled at T=1.0."""
    from rlmusic._tf import tf
    from rlmusic.constrain import compiled

    grammar = compiled(tuple(vocab.chars))
    run = tf.function(lambda x: model(x, model.initial_state(tf.shape(x)[0]))[0])
    total, count = 0.0, 0
    for start in range(0, len(tunes), 64):
        batch = [vocab.encode(t + "\n\n", what="tune") for t in tunes[start:start + 64]]
        width = max(len(ids) for ids in batch) - 1
        inputs = np.zeros((len(batch), width), np.int32)
        for row, ids in enumerate(batch):
            inputs[row, :len(ids) - 1] = ids[:-1]
        probs = tf.nn.softmax(run(tf.constant(inputs))).numpy()
        for row, ids in enumerate(batch):
            sid = grammar.start(primer)
            for t in range(len(primer) - 1, len(ids) - 1):
                mass = probs[row, t][grammar.mask_one(sid, 10_000)].sum()
                total -= float(np.log(max(mass, 1e-30)))
                count += 1
                sid = grammar.step_one(sid, int(ids[t + 1]))
    return total / count


def samples(num: int, seeds: list[int]) -> dict:
    from rlmusic import evaluate, realness, validity
    from rlmusic.abc import scan
    from rlmusic.corpus import DEFAULT_PRIMER
    from rlmusic.rundir import load_model, shipped_model
    from rlmusic.sample import Sampler

    model, vocab, _ = load_model(shipped_model())
    sampler = Sampler(model, vocab)
    tunes = corpus_tunes()
    use_abc2midi = validity.abc2midi_path() is not None
    runs: dict[str, list[dict]] = {"corpus": [], "none": [], "syntax": []}
    false_accepts, kls = [], []
    for seed in seeds:
        order = random.Random(seed).sample(range(len(tunes)), len(tunes))
        reference = [tunes[i] for i in order[:num]]
        real = [tunes[i] for i in order[num:2 * num]]
        index = realness.CopyIndex([scan(tunes[i]) for i in order[2 * num:]], 4)
        runs["corpus"].append({**evaluate.tune_metrics(real, use_abc2midi),
                               **evaluate.realness_metrics(real, reference, index, seed)})
        for mode in ("none", "syntax"):
            drawn = sampler.generate(num, seed=seed, constrain=mode)
            texts = [t.text for t in drawn]
            metrics = {**evaluate.tune_metrics(texts, use_abc2midi),
                       **evaluate.realness_metrics(texts, reference, index, seed),
                       "hit_max_length": sum(t.hit_limit for t in drawn) / num}
            runs[mode].append(metrics)
            print(f"seed {seed}, {mode}: valid {metrics['valid_rate']:.4f}, {metrics['mean_notes']:.1f} notes",
                  file=sys.stderr)
            if mode == "syntax":
                false_accepts.append(1 - metrics["valid_rate"])
                kls.append(mask_kl(model, vocab, texts, DEFAULT_PRIMER))
    table = {mode: {k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
                    for k in SHOWN if all(r.get(k) is not None for r in rs)} for mode, rs in runs.items()}
    reasons = {mode: Counter(k for r in rs for k in r.get("invalid_reasons", {})).most_common(5)
               for mode, rs in runs.items()}
    print(f"\nshipped model, T=1.0, {num} tunes x seeds {seeds} (valid: {'abc2midi' if use_abc2midi else 'grammar'}); "
          f"mean +- std over the seeds\n")
    print("| metric | corpus | unmasked (--constrain none) | masked (--constrain syntax) |")
    print("|---|---:|---:|---:|")
    for k in SHOWN:
        cells = [f"{table[m][k][0]:.3f} +- {table[m][k][1]:.3f}" if k in table[m] else "" for m in runs]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print(f"\nmasked tunes abc2midi rejects (false accepts): {np.mean(false_accepts):.4f} "
          f"(per seed {', '.join(f'{x:.4f}' for x in false_accepts)})")
    print(f"KL(masked || unmasked): {np.mean(kls):.4f} nats/char (per seed {', '.join(f'{x:.4f}' for x in kls)})")
    print("first problems of invalid tunes:", reasons)
    return {"machine": machine(), "num": num, "seeds": seeds, "valid_check": "abc2midi" if use_abc2midi else "grammar",
            "table": table, "false_accepts": false_accepts, "kl_masked_to_unmasked": kls, "reasons": reasons,
            "runs": runs}


def speed(num: int, iterations: int) -> dict:
    from rlmusic.constrain import compiled
    from rlmusic.rundir import load_model, shipped_model
    from rlmusic.sample import Sampler

    model, vocab, _ = load_model(shipped_model())
    sampler = Sampler(model, vocab)
    sampler.generate(64, max_length=60, constrain="none")  # trace both loops, at the timed batch size, first
    sampler.generate(64, max_length=60, constrain="syntax")
    compiled.cache_clear()  # the tables cold again

    def rate(mode: str, seed: int) -> tuple[float, float]:
        start = time.perf_counter()
        drawn = sampler.generate(num, seed=seed, constrain=mode)
        seconds = time.perf_counter() - start
        return num / seconds, sum(len(t.text) for t in drawn) / seconds

    sampling = {"masked, tables cold": rate("syntax", 1), "unmasked": rate("none", 1),
                "masked, tables warm (another seed)": rate("syntax", 2), "unmasked (another seed)": rate("none", 2)}
    tables = compiled(tuple(vocab.chars))
    print(f"{machine()}; shipped model, {num} tunes, batch 64, T=1.0\n")
    print("| sampler | tunes/s | chars/s |")
    print("|---|---:|---:|")
    for name, (tps, cps) in sampling.items():
        print(f"| {name} | {tps:.2f} | {cps:,.0f} |")
    ratio = sampling["masked, tables warm (another seed)"][0] / sampling["unmasked (another seed)"][0]
    cold = sampling["masked, tables cold"][0] / sampling["unmasked"][0]
    print(f"masked / unmasked tunes/s: warm {ratio:.2f}, cold {cold:.2f} (target >= 0.8); the tables hold "
          f"{tables.rows:,} filled states of {len(tables.states):,} met")
    collection = collect_times(iterations)
    c_ratio = collection["none"] / collection["syntax"]
    print(f"\nfine-tuning collection, default preset (64 tunes): {collection['none']:.1f} s unmasked, "
          f"{collection['syntax']:.1f} s masked per iteration: masked at {c_ratio:.2f}x the speed (target >= 0.8)")
    return {"machine": machine(), "num": num, "sampling": sampling, "warm_ratio": ratio, "cold_ratio": cold,
            "table_rows": tables.rows, "states": len(tables.states), "collection_s": collection,
            "collection_ratio": c_ratio}


def collect_times(iterations: int) -> dict:
    """Seconds per collection of the default fine-tuning preset's tunes, masked and unmasked (after one untimed
    collection that traces the loop)."""
    from rlmusic import config as config_lib
    from rlmusic.cli import CONFIG_DIR
    from rlmusic.finetune import FinetuneConfig
    from rlmusic.learner import make_agent
    from rlmusic.rewards.mix import RewardMix
    from rlmusic.rollouts import Rollouts
    from rlmusic.rundir import load_model, shipped_model

    out = {}
    for mode in ("none", "syntax"):
        cfg = config_lib.load(FinetuneConfig, CONFIG_DIR / "finetune" / "default.yaml", [f"constrain={mode}"])
        model, vocab, _ = load_model(shipped_model())
        rollouts = Rollouts(cfg, vocab, model, RewardMix(cfg.rewards, gates=cfg.gate))
        agent, _, _ = make_agent(cfg, rollouts.env, rollouts.actor)
        rollouts.attach(agent)
        rollouts.collect()
        start = time.perf_counter()
        for _ in range(iterations):
            rollouts.collect()
        out[mode] = (time.perf_counter() - start) / iterations
    return out


def random_walks(num: int, seed: int = 0, max_length: int = 400) -> dict:
    """Tunes drawn uniformly among the characters the mask allows; abc2midi's verdict on them."""
    from rlmusic import validity
    from rlmusic.constrain import compiled
    from rlmusic.rundir import RunDir, shipped_model

    vocab = RunDir(shipped_model()).read_vocab()
    grammar = compiled(tuple(vocab.chars))
    primer = "X:1\nT:\nM:4/4\nL:1/8\nK:D\n"
    rng = np.random.default_rng(seed)
    tunes = []
    for _ in range(num):
        sid, text = grammar.start(primer), []
        for left in range(max_length, 0, -1):
            action = int(rng.choice(np.flatnonzero(grammar.mask_one(sid, left))))
            sid = grammar.step_one(sid, action)
            text.append(vocab.chars[action])
            if sid == grammar.end_id:  # the blank line that ends the tune
                break
        tunes.append(primer + "".join(text).rstrip("\n"))
    errors = validity.abc2midi_errors(tunes)
    rejected = [e for e in errors if e]
    why = Counter(re.sub(r"\d+", "N", e[0].split(" in line")[0]).strip()[:70] for e in rejected)
    print(f"random walks under the mask: {len(rejected)} of {num} rejected by abc2midi")
    for reason, n in why.most_common(10):
        print(f"  {n:4d}  {reason}")
    return {"machine": machine(), "num": num, "seed": seed, "max_length": max_length,
            "false_accepts": len(rejected) / num, "reasons": dict(why.most_common())}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("part", choices=("recall", "samples", "speed", "random"))
    ap.add_argument("--num", type=int, default=None, help="tunes per seed (samples: 1000) or per timing (speed: 256)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=3, help="speed: timed collections per mode")
    args = ap.parse_args()
    if args.part == "recall":
        result = recall()
    elif args.part == "samples":
        result = samples(args.num or 1000, args.seeds)
    elif args.part == "random":
        result = random_walks(args.num or 1000)
    else:
        result = speed(args.num or 256, args.iterations)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"grammar_{args.part}.json"
    path.write_text(json.dumps({"command": "python benchmarks/grammar.py " + " ".join(sys.argv[1:]), **result},
                               indent=1, default=str), encoding="utf-8")
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
