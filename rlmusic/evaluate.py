"""`python -m rlmusic evaluate`: the metrics table of a model (or of real tunes, the human baseline).

Metric definitions (all over the sampled tunes; "fraction" metrics are in [0, 1]). They adapt Magenta's
`rl_tuner_eval_metrics` to ABC: the RL Tuner counted notes on a 16th-note grid in C major; here notes are the
scanner's melody notes (ties merged, chords as their top note) in the key and mode of each tune's K: field.

    valid_rate                  share of tunes that pass the validity check (abc2midi when installed, else the
                                ABC grammar, rlmusic/grammar.py); `valid_check` says which; `constrain` says
                                whether the tunes were drawn under the grammar's mask
    invalid_reasons             what limits valid_rate: kind of first problem -> share of all tunes whose first
                                problem it is (numbers in the message as N); evaluate prints the commonest
    notes_not_in_key            notes outside the key's scale / all notes
    notes_excessively_repeated  notes inside runs of more than 4 equal pitches / all notes
    starts_with_tonic           share of tunes whose first note is the tonic (any octave)
    ends_with_tonic             share of tunes whose last note is the tonic
    leaps_resolved              leaps (>= a fifth) followed by a step or third back / leaps with a next note
    unique_max_note             share of tunes whose highest note occurs once
    unique_min_note             share of tunes whose lowest note occurs once
    notes_in_repeated_motif     notes in bars whose interval pattern (>= 3 distinct pitches) recurs / all notes
    autocorrelation_lag1..3     mean over tunes of the pitch autocorrelation at lags 1-3 (signed, in [-1, 1])
    pitch_class_entropy         mean over tunes of the log2 entropy of the 12-bin pitch-class histogram (MusPy)
    scale_consistency           mean over tunes of the best major/minor scale's in-scale share (MusPy)
    two_strain_tunes            share of tunes with at least two strains (rlmusic/structure.py)
    second_strain_answers       of those, the share whose second strain answers the first (same cadence, or a
                                quarter of its bar figures taken from the first)
    repeat_sign_tunes           share of tunes with `|:`, `:|` or `::` (rlmusic/structure.py)
    aabb_tunes                  share of tunes in two strains of 4, 8 or 16 bars, each repeated or written out
    meter_consistent_tunes      of tunes in a meter with 3+ bars, the share whose every bar has the meter's
                                length (each strain's pickup and last bar may be short)
    bar_patterns_per_1000       distinct bar-line patterns (the tune's sequence of bar lines) per 1,000 tunes
    top15_bar_pattern_share     share of tunes whose bar-line pattern is one of the 15 most common
    kl_to_reference             with --reference: KL(model || reference) in nats/char over the characters the
                                model wrote (each tune read from its primer, as it was sampled)
    nll_bits_per_char           with --data and a model: the model's NLL on real tunes, bits/char

With --data, the corpus is shuffled (--seed) and split into `--num` real reference tunes, `--num` other real
tunes (the `corpus` column: the baseline, judged exactly like a model) and the rest; every column is then
measured against the reference (rlmusic/realness.py has the definitions):
    discriminator_text[_std]    5-fold accuracy (mean, std) of a character 1-5-gram TF-IDF + logistic
                                regression telling the column's tunes from the reference (0.5: indistinguishable)
    discriminator_features[_std] the same on the scanner's musical features
    overlap/<feature>, kl/<feature>  KDE overlap area and KL(column || reference) per feature
    feature_overlap, feature_kl the means over the features
    key_mode_tv, meter_tv       total-variation distance of the mode and meter distributions
    copies_<N>_bars             share of tunes sharing N (--copy-bars) consecutive bars with a corpus tune
                                (the baseline: with a corpus tune other than itself)
    exact_copies                share of tunes whose notes equal a corpus tune's
    distinct_bars               distinct bars / all bars among the column's tunes
    duplicate_tunes             share of tunes whose notes equal an earlier tune's of the same column
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import numpy as np

from rlmusic.abc import Scan, scan
from rlmusic.config import Checked, Range
from rlmusic.corpus import DEFAULT_PRIMER
from rlmusic import melody, realness
from rlmusic.structure import second_strain_answers
from rlmusic.tables import METRIC_KEYS, REALNESS_KEYS, markdown_table  # noqa: F401 (re-exported)

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def pitch_class_entropy(pitches: list[int]) -> float | None:
    if not pitches:
        return None
    counts = np.bincount(np.asarray(pitches) % 12, minlength=12) / len(pitches)
    nz = counts[counts > 0]
    return float(-(nz * np.log2(nz)).sum())


def scale_consistency(pitches: list[int]) -> float | None:
    if not pitches:
        return None
    pcs = Counter(p % 12 for p in pitches)
    best = 0
    for tonic in range(12):
        for scale in (MAJOR, MINOR):
            members = {(tonic + d) % 12 for d in scale}
            best = max(best, sum(n for pc, n in pcs.items() if pc in members))
    return best / len(pitches)


def tune_metrics(tunes: list[str], use_abc2midi: bool = True) -> dict:
    """The metrics above (but the model-based ones) for a list of tunes."""
    from rlmusic import validity

    scans: list[Scan] = [scan(t) for t in tunes]
    melodies = [[n.pitch for n in s.melody()] for s in scans]
    total = sum(len(m) for m in melodies)
    problems = validity.check_tunes(tunes, use_abc2midi)
    valid = [not p for p in problems]
    check = validity.checker(use_abc2midi)
    not_in_key = sum(len(f) - sum(f) for f in (melody.in_key_flags(s) for s in scans))
    repeated = sum(sum(melody.repeated_flags(m)) for m in melodies)
    leaps = resolved = 0
    for m in melodies:
        n_leaps, n_resolved, _ = melody.leap_outcomes(m)
        leaps, resolved = leaps + n_leaps, resolved + n_resolved
    in_motif = 0
    for s in scans:
        motifs = melody.bar_motifs(s)
        counts = Counter(motifs.values())
        repeated_bars = {b for b, mo in motifs.items() if counts[mo] > 1}
        in_motif += sum(1 for n in s.melody() if n.bar in repeated_bars)
    with_notes = [(s, m) for s, m in zip(scans, melodies) if m]
    answers = [a for a in (second_strain_answers(t, s) for t, s in zip(tunes, scans)) if a is not None]
    out = {
        "valid_rate": _ratio(sum(valid), len(tunes)),
        "notes_not_in_key": _ratio(not_in_key, total),
        "notes_excessively_repeated": _ratio(repeated, total),
        "starts_with_tonic": _mean(float(m[0] % 12 == s.key.tonic) for s, m in with_notes),
        "ends_with_tonic": _mean(float(m[-1] % 12 == s.key.tonic) for s, m in with_notes),
        "leaps_resolved": _ratio(resolved, leaps),
        "unique_max_note": _mean(float(m.count(max(m)) == 1) for _, m in with_notes),
        "unique_min_note": _mean(float(m.count(min(m)) == 1) for _, m in with_notes),
        "notes_in_repeated_motif": _ratio(in_motif, total),
        **{f"autocorrelation_lag{k}": _mean(melody.autocorrelation(m, k) for m in melodies) for k in (1, 2, 3)},
        "pitch_class_entropy": _mean(pitch_class_entropy(m) for m in melodies),
        "scale_consistency": _mean(scale_consistency(m) for m in melodies),
        "two_strain_tunes": _ratio(len(answers), len(tunes)),
        "second_strain_answers": _ratio(sum(answers), len(answers)),
        **realness.form(tunes, scans),
        "valid_check": check,
        "invalid_reasons": invalid_reasons(problems),
        "tunes": len(tunes),
        "mean_notes": total / len(tunes) if tunes else 0.0,
    }
    return out


def invalid_reasons(problems: list[list[str]]) -> dict[str, float]:
    """Kind of each invalid tune's first problem -> share of all tunes, commonest first. The kind is the message
    with its numbers as N, so "Unrecognized character: 0" and "...: 9" are one kind."""
    kinds = Counter(re.sub(r"\d+", "N", p[0]).strip() for p in problems if p)
    return {k: n / len(problems) for k, n in kinds.most_common()}


def reasons_line(reasons: dict[str, float], top: int = 5) -> str:
    """The commonest kinds as one line: `0.043 Could not find note to be tied; 0.017 Malformed note ...`."""
    return "; ".join(f"{share:.3f} {kind}" for kind, share in list(reasons.items())[:top]) or "none"


def _padded_batches(vocab, tunes: list[str], batch: int = 32):
    """Batches of (ids [B, T+1], mask [B, T]) for scoring; each tune is preceded by the end of the one before."""
    yield from _batches(vocab, ["\n\n" + t + "\n\n" for t in tunes], 1, batch)


def _batches(vocab, texts: list[str], first: int, batch: int = 32):
    """Batches of (ids [B, T+1], mask [B, T]): the mask holds the predictions of each text's characters from
    index `first` + 1 to its end."""
    for i in range(0, len(texts), batch):
        ids, lengths = vocab.encode_padded(texts[i:i + batch])
        steps = np.arange(ids.shape[1] - 1)[None, :]
        yield ids, ((steps >= first) & (steps < lengths[:, None] - 1)).astype(np.float32)


def nll_bits_per_char(model, vocab, tunes: list[str]) -> tuple[float | None, int]:
    """The model's NLL on `tunes` (bits/char; None when no tune is usable) and how many tunes were skipped for
    characters outside the vocabulary."""
    from rlmusic._tf import tf

    usable = [t for t in tunes if not vocab.unknown(t)]
    total = count = 0.0
    for ids, mask in _padded_batches(vocab, usable):
        logits, _ = model(ids[:, :-1])
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits).numpy()
        total += float((nll * mask).sum())
        count += float(mask.sum())
    nll = total / count / math.log(2) if count else None
    return nll, len(tunes) - len(usable)


def kl_to_reference(model, reference, vocab, tunes: list[str], primer: str = DEFAULT_PRIMER) -> float:
    """Mean over the characters the model wrote of KL(model(.|s) || reference(.|s)), in nats/char.

    Each tune is scored as it was sampled (and as fine-tuning collects it): both models read `primer` from a zero
    state, then every character after it and the closing blank line count. Scoring the tunes back to back instead
    (as `nll_bits_per_char` does, after the end of the one before) would judge a fine-tuned model in a context it
    never writes from, where it can differ from the reference by nats on characters it did not choose."""
    from rlmusic._tf import tf

    if any(not t.startswith(primer) for t in tunes):
        raise ValueError(f"kl_to_reference: a tune does not start with the primer {primer!r}")
    total = count = 0.0
    # the predictions from the primer's last character on: the characters after the primer, and the blank line
    for ids, mask in _batches(vocab, [t + "\n\n" for t in tunes], len(primer) - 1):
        lp = tf.nn.log_softmax(model(ids[:, :-1])[0], -1)
        lq = tf.nn.log_softmax(reference(ids[:, :-1])[0], -1)
        kl = tf.reduce_sum(tf.exp(lp) * (lp - lq), -1).numpy()
        total += float((kl * mask).sum())
        count += float(mask.sum())
    return total / max(count, 1.0)


def plot_histograms(sources: dict[str, list[str]], path: Path) -> None:
    """Pitch-class and melodic-interval histograms of each source, overlaid, as one PNG."""
    from rlmusic.files import atomic_write_bytes
    from rlmusic.plots import figure_png, new_figure

    fig = new_figure((12, 4))
    ax1, ax2 = fig.subplots(1, 2)
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    for label, tunes in sources.items():
        pcs, intervals = [], []
        for t in tunes:
            m = [n.pitch for n in scan(t).melody()]
            pcs += [p % 12 for p in m]
            intervals += [max(-12, min(12, b - a)) for a, b in zip(m, m[1:])]
        if pcs:
            ax1.plot(range(12), np.bincount(pcs, minlength=12) / len(pcs), marker="o", label=label)
        if intervals:
            hist = np.bincount(np.asarray(intervals) + 12, minlength=25) / len(intervals)
            ax2.plot(range(-12, 13), hist, marker=".", label=label)
    ax1.set(title="Pitch classes", xticks=range(12), xticklabels=names, ylabel="share of notes")
    ax2.set(title="Melodic intervals (semitones, clipped at an octave)", ylabel="share of intervals")
    ax1.legend()
    ax2.legend()
    atomic_write_bytes(path, figure_png(fig, dpi=110))


def realness_metrics(tunes: list[str], reference: list[str], index, seed: int = 0) -> dict:
    """Distance of `tunes` from the real `reference` tunes as a whole (rlmusic/realness.py): discriminators,
    feature distributions; copying against `index` (a realness.CopyIndex of the training side)."""
    scans, ref_scans = [scan(t) for t in tunes], [scan(t) for t in reference]
    return {**realness.discriminator(tunes, reference, seed=seed), **realness.distributions(scans, ref_scans),
            **realness.copying(scans, index)}


@dataclass
class EvaluateConfig(Checked):
    """What `evaluate` compares and how; the command's flags fill it (`--top-k` is `top_k`)."""

    checkpoint: list[str] = field(default_factory=list)
    """Run directories to sample from, one column each (resolved paths: the CLI turns `pretrained` into one)."""
    data: list[str] = field(default_factory=list)
    """Real tunes (ABC or MIDI files, folders, globs, music21 collections): the `corpus` column and the reference
    every column's realness is measured against."""
    reference: Optional[str] = None
    """Run directory of the prior: adds kl_to_reference to each model's column."""
    num: Annotated[int, Range(1)] = 100
    """Tunes sampled per model (and real tunes drawn for the corpus column and the reference)."""
    seed: Annotated[int, Range(0, 2**31 - 1)] = 0
    """Seed of the sampling and of the corpus shuffle."""
    temperature: Annotated[float, Range(0)] = 1.0
    """Sampling temperature."""
    top_k: Annotated[int, Range(0, 1_000_000)] = 0
    """Sample among the k likeliest characters (0: all)."""
    top_p: Annotated[float, Range(0, 1, min_open=True)] = 1.0
    """Nucleus sampling: the smallest set of characters holding this much probability (1: all)."""
    max_length: Annotated[int, Range(2, 100_000)] = 1500
    """Characters per sampled tune at most."""
    constrain: Literal["syntax", "none"] = "none"
    """"syntax": sample under the ABC grammar's mask (the CLI's default); "none": the model as it is."""
    checker: Literal["auto", "abc2midi", "scanner"] = "auto"
    """The validity check: abc2midi (when installed; "auto" picks it), else the grammar's verdict."""
    midi_channel: Annotated[int, Range(0, 16)] = 0
    """MIDI files in `data`: the channel whose voice becomes the tune (0: the voice with the most notes)."""
    copy_bars: Annotated[int, Range(1)] = 4
    """Bars a sampled tune must share with a corpus tune to count as a copy."""
    rewards: Optional[str] = None
    """Comma-separated reward names: adds each reward's mean to every column."""
    json: Optional[str] = None
    """Write the metrics here (JSON)."""
    plots: Optional[str] = None
    """Write pitch-class and interval histograms here (PNG)."""
    report: Optional[str] = None
    """Write an offline HTML report (table, histograms, form, tunes) in this folder."""


def run(opts: EvaluateConfig, log=print) -> dict[str, dict]:
    """The evaluate command: sample each model, measure, print the table, write what was asked. Returns the
    columns: `corpus` (the baseline, with `data`) and one per model."""
    import random

    from rlmusic import validity
    from rlmusic.corpus import load_corpus

    checker = validity.resolve_checker(opts.checker)
    use_abc2midi = checker == "abc2midi"
    columns: dict[str, dict] = {}
    sources: dict[str, list[str]] = {}
    real: list[str] = []
    reference: list[str] = []
    if opts.data:
        # the corpus, shuffled: `reference` (real held-out tunes every set is compared with), `real` (the baseline
        # column: other real tunes, judged like a model), the rest (the training side of the copying index)
        tunes = load_corpus(opts.data, midi_channel=opts.midi_channel).tunes
        order = random.Random(opts.seed).sample(range(len(tunes)), len(tunes))
        n = min(opts.num, len(tunes) // 2)
        reference = [tunes[i] for i in order[:n]]
        real = [tunes[i] for i in order[n:2 * n]]
        log(f"realness: {len(reference)} real reference tunes; copying checked against {len(tunes)} tunes")
        # the baseline is checked against the corpus but itself; the models against the whole corpus
        rest_index = realness.CopyIndex([scan(tunes[i]) for i in order[2 * n:]] + [scan(t) for t in reference],
                                        opts.copy_bars)
        model_index = rest_index.extended([scan(t) for t in real])
        columns["corpus"] = {**tune_metrics(real, use_abc2midi),
                             **realness_metrics(real, reference, rest_index, opts.seed)}
        sources["corpus"] = real
    results: dict[str, dict] = {}
    for checkpoint in opts.checkpoint:
        from rlmusic.errors import UserError
        from rlmusic.rundir import load_model
        from rlmusic.sample import Sampler

        model, vocab, _ = load_model(checkpoint)
        constrain = opts.constrain
        sampled = [t.text for t in Sampler(model, vocab).generate(
            opts.num, max_length=opts.max_length, temperature=opts.temperature, top_k=opts.top_k,
            top_p=opts.top_p, seed=opts.seed, constrain=constrain)]
        result = {"constrain": constrain, **tune_metrics(sampled, use_abc2midi)}
        if opts.reference:
            ref_model, ref_vocab, _ = load_model(opts.reference)
            if ref_vocab != vocab:
                raise UserError(f"--reference {opts.reference} has another vocabulary ({vocab.diff(ref_vocab)})")
            result["kl_to_reference"] = kl_to_reference(model, ref_model, vocab, sampled)
        if real:
            result["nll_bits_per_char"], skipped = nll_bits_per_char(model, vocab, real)
            if skipped == len(real):  # not 0.000: not measured
                unknown = sorted({c for t in real for c in vocab.unknown(t)})
                log(f"note: nll_bits_per_char not measured: every --data tune holds characters outside the "
                    f"vocabulary of {checkpoint} ({' '.join(map(repr, unknown[:10]))})")
            elif skipped:
                log(f"nll_bits_per_char: {skipped} tunes skipped (characters outside the vocabulary)")
            result.update(realness_metrics(sampled, reference, model_index, opts.seed))
            result["corpus"] = columns["corpus"]
        name = Path(checkpoint).name or "model"
        if name in columns:
            name = str(checkpoint)
        columns[name] = results[name] = result
        sources[name] = sampled
    if opts.rewards:
        from rlmusic.rewards.mix import RewardMix

        mix = RewardMix({n.strip(): 1.0 for n in opts.rewards.split(",") if n.strip()})
        for col, tunes in sources.items():
            for name, mean in mix.means(mix.score(tunes)).items():
                columns[col][f"rewards/{name}"] = mean
    print(markdown_table(columns))
    for col, metrics in columns.items():  # what limits valid_rate, where the table cannot say
        if metrics.get("invalid_reasons"):
            print(f"invalid ({col}), first problems as a share of tunes: {reasons_line(metrics['invalid_reasons'])}")
    if opts.json:  # one model: its metrics (the corpus' under "corpus"); several: name -> metrics
        if not results:
            payload = columns["corpus"]
        elif len(results) == 1:
            payload = next(iter(results.values()))
        else:
            payload = results
        write_json(Path(opts.json), payload)
    if opts.plots:
        plot_histograms(sources, Path(opts.plots))
    if opts.report:
        from rlmusic.report import write_report

        path = write_report(Path(opts.report), columns, sources, reference, checker=checker, log=log)
        log(f"report written to {path}")
    return columns


def write_json(path: Path, metrics: dict) -> None:
    from rlmusic.files import atomic_write_text

    atomic_write_text(path, json.dumps(metrics, indent=2))
