"""ABC syntax rewards: is the text a tune abc2midi, verovio and a musician can read?

Each returns one score per tune, higher is better; the range is in the first line of the docstring.
"""

from __future__ import annotations

from rlmusic import validity
from rlmusic.abc import Scan, scan
from rlmusic.rewards.registry import register

REQUIRED = validity.REQUIRED_HEADERS  # the same headers the abc2midi-based check requires


def scans_of(tunes: list[str], context: dict) -> list[Scan]:
    """The `scans` the caller computed once for all rewards, or fresh scans."""
    scans = context.get("scans")
    return scans if scans is not None and len(scans) == len(tunes) else [scan(t) for t in tunes]


@register("headers")
def headers(tunes: list[str], **context) -> list[float]:
    """Share of the required header fields X, T, M, K present (L may be implied by M), in [0, 1].

    Why: without M: and K: no program knows the meter or key; without X: and T: tune books cannot index it.
    Rule: ABC 2.1 section 2.2. Example: `X:1\\nT:a\\nK:D\\nABc|` -> 0.75 (no M:).
    """
    return [sum(f in s.fields for f in REQUIRED) / len(REQUIRED) for s in scans_of(tunes, context)]


@register("clean_scan")
def clean_scan(tunes: list[str], **context) -> list[float]:
    """1 / (1 + problems the scanner found): 1.0 for a tune that reads cleanly, in (0, 1].

    Why: unclosed chords and slurs, stray `]`, unknown characters make tunes other programs reject or misread.
    Example: `X:1\\nT:a\\nM:4/4\\nK:C\\n]]]] zz(((` -> 1/(1+7): four stray `]` and three unclosed slurs.
    """
    return [1.0 / (1 + len(s.problems)) for s in scans_of(tunes, context)]


@register("bar_durations")
def bar_durations(tunes: list[str], **context) -> list[float | None]:
    """Share of bars whose length matches the meter, in [0, 1]; None for free meter or fewer than 3 bars.

    The first bar may be a pickup and the last may complete it, so both may be short (never long). Why: a bar
    too long or too short is the most common rhythm error of character models. Rule: ABC 2.1 sections 3.1.6,
    4.1. Example: `M:4/4 L:1/8`, `ABcd efga|ABc|ABcd efga|ABcd efga|` -> 0.75 (the second bar is short).
    """
    out: list[float | None] = []
    for s in scans_of(tunes, context):
        bars = [b for b in s.bars if b.expected is not None]
        if len(bars) < 3:
            out.append(None)
            continue
        ok = 0
        for i, b in enumerate(bars):
            edge = i == 0 or i == len(bars) - 1
            if abs(b.duration - b.expected) < 1e-6 or (edge and b.duration < b.expected):
                ok += 1
        out.append(ok / len(bars))
    return out


@register("balanced")
def balanced(tunes: list[str], **context) -> list[float]:
    """1.0 when repeats, endings, chords and slurs are balanced, minus 0.25 per imbalance, in [0, 1].

    Counted: `:|` without a matching start (the first `:|` may repeat from the beginning), `|:` never closed,
    more endings than repeats allow, and the scanner's unclosed or stray chords and slurs.
    Example: `|:ABc|` (start never closed) -> 0.75.
    """
    out = []
    for s in scans_of(tunes, context):
        starts, ends, endings = s.repeats["start"], s.repeats["end"], s.repeats["endings"]
        imbalance = abs(ends - starts) - (1 if ends == starts + 1 else 0)  # repeat-from-start is fine
        imbalance += max(0, endings - 2 * max(ends, 1))
        imbalance += sum(1 for p in s.problems if p.kind in ("chord", "slur"))
        out.append(max(0.0, 1.0 - 0.25 * imbalance))
    return out


def _bar_durations_per_note(tunes: list[str], **context) -> list[list[tuple[int, float]]]:
    """Dense form: -1/bars at the bar line closing each bar whose length does not match the meter."""
    out = []
    for s in scans_of(tunes, context):
        bars = [b for b in s.bars if b.expected is not None]
        if len(bars) < 3:
            out.append([])
            continue
        wrong = [b for i, b in enumerate(bars)
                 if not (abs(b.duration - b.expected) < 1e-6
                         or ((i == 0 or i == len(bars) - 1) and b.duration < b.expected))]
        out.append([(b.end, -1.0 / len(bars)) for b in wrong])
    return out


bar_durations.per_note = _bar_durations_per_note


@register("abc2midi")
def abc2midi(tunes: list[str], **context) -> list[float | None]:
    """1 / (1 + abc2midi's Error lines), in (0, 1]; None for every tune when abc2midi is not installed.

    Why: abc2midi is the reference ABC player; its errors are what users hit. Slower than the rest (one process
    per batch), so it is left out of the default fine-tuning preset. Example: a clean tune -> 1.0.
    """
    if validity.abc2midi_path() is None:
        return [None] * len(tunes)
    return [1.0 / (1 + len(e)) for e in _abc2midi_positions(tunes, context)]


def _abc2midi_positions(tunes: list[str], context: dict) -> list[list[tuple[int, str]]]:
    """abc2midi's errors with their offsets, kept in the scans' cache: the score and its dense form share one
    abc2midi run."""
    scans = scans_of(tunes, context)
    if any("abc2midi" not in s.cache for s in scans):
        for s, errs in zip(scans, validity.abc2midi_error_positions(tunes)):
            s.cache["abc2midi"] = errs
    return [s.cache["abc2midi"] for s in scans]


def _abc2midi_per_note(tunes: list[str], **context) -> list[list[tuple[int, float]]]:
    """Dense form: -1 at the character abc2midi's first Error points at (its `line-char` position); nothing
    where abc2midi is not installed."""
    if validity.abc2midi_path() is None:
        return [[] for _ in tunes]
    return [[(errs[0][0], -1.0)] if errs else [] for errs in _abc2midi_positions(tunes, context)]


abc2midi.per_note = _abc2midi_per_note


@register("abc2midi_clean")
def abc2midi_clean(tunes: list[str], **context) -> list[float | None]:
    """1.0 when abc2midi reads the tune without an Error line, else 0.0; None when abc2midi is not installed.

    Why: as a gate, `abc2midi`'s 1 / (1 + errors) only halves the reward of a tune with one error, so a policy
    learns little from the tunes the validity check of docs/measurements.md (rlmusic.validity) rejects; this is that check's
    verdict, all or nothing (measured: docs/measurements.md). Example: a tie to a rest (`A4- z4|`) -> 0.0.
    """
    return [None if v is None else float(v == 1.0) for v in abc2midi(tunes, **context)]


abc2midi_clean.per_note = _abc2midi_per_note


@register("enough_bars")
def enough_bars(tunes: list[str], **context) -> list[float]:
    """min(1, bars / 8), in [0, 1]: a tune has at least one 8-bar strain.

    Why: per-tune shares (in key, no repeats...) are easy to max out on a two-bar fragment; this keeps fine-tuning
    from shrinking tunes. Folk tunes are built of 8-bar strains. Example: a 4-bar tune -> 0.5.
    """
    return [min(1.0, len(s.bars) / 8) for s in scans_of(tunes, context)]


@register("valid")
def valid(tunes: list[str], **context) -> list[float]:
    """1.0 when the tune is valid ABC by the grammar (rlmusic/grammar.py, what the sampler's mask allows: the
    headers X T M K, abc2midi's rules), else 0.0.

    The fast stand-in for the abc2midi check (rlmusic.validity), used for valid rates inside the RL loop; a
    policy drawing under the grammar's mask (constrain: syntax) scores 1.0 on every tune.
    Example: `X:1\nT:a\nK:C\nABc|` -> 0.0 (no M:).
    """
    return [float(at is None) for at in _grammar_errors(tunes, context)]


def _grammar_errors(tunes: list[str], context: dict) -> list[int | None]:
    """Where each tune stops being valid ABC (None: valid), kept in the scans' cache for the dense form."""
    from rlmusic.grammar import AbcGrammar

    scans = scans_of(tunes, context)
    grammar = AbcGrammar()
    for s, t in zip(scans, tunes):
        if "grammar" not in s.cache:
            s.cache["grammar"] = grammar.first_error(t)
    return [s.cache["grammar"] for s in scans]


def _valid_per_note(tunes: list[str], **context) -> list[list[tuple[int, float]]]:
    """Dense form: -1 at the first character no valid tune has there (a missing header field: where the music
    begins; a tune left open: its end)."""
    return [[] if at is None else [(at, -1.0)] for at in _grammar_errors(tunes, context)]


valid.per_note = _valid_per_note


@register("strains")
def strains_reward(tunes: list[str], **context) -> list[float]:
    """min(1, proper strains / 2), in [0, 1]: the form of the tradition, two strains of 4, 8 or 16 bars, each
    repeated (`|: ... :|`) or written out twice.

    Why: without it fine-tuning drops the repeat signs (`balanced` is easiest with none) and the tunes lose their
    form (docs/measurements.md: two-strain tunes 0.28 -> 0.035). Rule: AABB, the commonest form of the tradition (Sturm &
    Ben-Tal 2017; rlmusic/structure.py). Example: `|:8 bars:||:8 bars:|` -> 1.0; one repeated strain -> 0.5.
    """
    from rlmusic.structure import proper_strains

    return [min(1.0, proper_strains(s, t) / 2) for s, t in zip(scans_of(tunes, context), tunes)]


FORM_SECTION_BARS = 4  # bars a marked section needs to earn `form` credit


@register("form")
def form(tunes: list[str], **context) -> list[float]:
    """0.5 x min(1, sections / 2) + 0.5 x min(1, proper strains / 2), in [0, 1]: graded credit toward the form
    of the tradition. A section is a run of at least 4 bars holding notes, marked off by a repeat sign or a double
    bar (rlmusic/structure.py `strains`); a proper strain is `strains`' (4, 8 or 16 complete bars, repeated or
    written out twice).

    Why: `strains` alone is all or nothing per strain and scores ~0.05 in fine-tuning, too rarely to teach; the
    policy meanwhile drops the repeat signs and double bars that make sections at all (docs/measurements.md). Half the credit
    goes to having two marked sections, half to their being the tradition's shape. Sections shorter than 4 bars
    earn nothing, so a `||` every two bars is no shortcut. Example: `|:8 bars:||:8 bars:|` -> 1.0; two 5-bar
    sections between double bars -> 0.5; one repeated 8-bar strain -> 0.5.
    """
    from rlmusic.structure import proper_strains

    return [0.5 * min(1.0, marked_sections(s, t) / 2) + 0.5 * min(1.0, proper_strains(s, t) / 2)
            for s, t in zip(scans_of(tunes, context), tunes)]


def marked_sections(s: Scan, text: str) -> int:
    """Sections of at least FORM_SECTION_BARS bars holding notes, marked off by repeat signs or double bars."""
    from rlmusic.structure import strains

    return sum(1 for st in strains(s, text) if len(st) >= FORM_SECTION_BARS)


@register("two_strains")
def two_strains(tunes: list[str], **context) -> list[float]:
    """1.0 when the tune has two or more sections of at least 4 bars (the sections `form` counts), else 0.0.

    Why: all or nothing per tune, so its mean over an iteration is the share of tunes in strains, the proportion
    `evaluate`'s two_strain_tunes reports (32 % of the corpus): the quantity to hold with `reward_targets`. A target
    on `form`'s graded mean holds the mean, not the share: the policy learns tunes with part of the credit where the
    corpus is bimodal, in strains or not (docs/measurements.md: form_pi). Example: `|:8 bars:||:8 bars:|` -> 1.0; two 5-bar
    sections between double bars -> 1.0; one repeated 8-bar strain -> 0.0; two 2-bar sections -> 0.0.
    """
    return [float(marked_sections(s, t) >= 2) for s, t in zip(scans_of(tunes, context), tunes)]


@register("repeat_signs")
def repeat_signs(tunes: list[str], **context) -> list[float]:
    """1.0 when the body has a repeat sign (`|:`, `:|` or `::`), else 0.0.

    Why: its mean is `evaluate`'s repeat_sign_tunes (23 % of the corpus). With `reward_targets` under
    `target_control: pi` its weight goes below 0 when the tunes repeat more than the corpus does: the rewards for
    form otherwise overshoot into repeat signs on nearly every tune (docs/measurements.md: form_gate, form_pi at 120 iterations).
    Example: `|:DFAF:|` -> 1.0; `DFAF||` -> 0.0; a `:` in a header -> 0.0.
    """
    from rlmusic.structure import has_repeat_signs

    return [float(has_repeat_signs(t)) for t in tunes]


@register("answers")
def answers(tunes: list[str], **context) -> list[float | None]:
    """1.0 when the second strain answers the first, else 0.0; None with fewer than two strains.

    Why: a B strain comes home to A's cadence or reuses A's figures; a random second section does not.
    Rule: rlmusic/structure.py `second_strain_answers` (the same cadence bar, or a quarter of B's bar figures
    taken from A). Example: A and B ending on the same bar `D2D2 D4` -> 1.0.
    """
    from rlmusic.structure import second_strain_answers

    out: list[float | None] = []
    for s, t in zip(scans_of(tunes, context), tunes):
        a = second_strain_answers(t, s)
        out.append(None if a is None else float(a))
    return out
