"""The music rewards (rewards/music.py): cadences, phrase repeats and the realness guard, table-driven on
hand-written ABC, one comment per case."""

import numpy as np
import pytest

from rlmusic.abc import scan
from rlmusic.rewards import score

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n"

CADENCES = [
    # both strains come home to the tonic D
    ("|:DFAF d2d2:||:fafe dBd2:|", 1.0),
    # the A strain ends on the dominant (a half cadence, half credit), the tune on the tonic
    ("|:DFAF d2A2:||:fafe dBd2:|", 0.75),
    # the tune itself ends on the dominant: the last strain gets no half credit
    ("|:DFAF d2d2:||:fafe dBA2:|", 0.5),
    # no strain marks at all: only the tune's last note counts, and it is the tonic
    ("DFAF d2d2|fafe dBd2|", 1.0),
    # ... and here it is not
    ("DFAF d2d2|fafe dBc2|", 0.0),
    # a first ending leads back into the strain (its end on B is no cadence); the second ending ends on D
    ("|:DFAF dfed|1 cBAG FGAB:|2 cBAG FED2|]", 1.0),
    # a pickup bar does not change where the strain ends
    ("|:A|DFAF d2d2:|", 1.0),
    # another key: in K:Ador the tonic is A, so ending on D is no cadence
    ("K:Ador\n|:ABcd e2d2:||:edcB A4:|", 0.5),
    # no notes: the rule does not apply
    ("z8|z8|]", None),
]


@pytest.mark.parametrize("body,expected", CADENCES)
def test_cadences(body, expected):
    head = HEAD.replace("K:D\n", "") if body.startswith("K:") else HEAD
    assert score("cadences", [head + body]) == [expected]


STRAIN_CADENCES = [
    # two marked strains of 2 bars each, both home: as many cadences as strains due
    ("|:DFAF d2d2|DFAF d2d2:||:fafe dBd2|fafe dBd2:|", 1.0),
    # 16 bars and no strain mark, ending on D: one cadence where 16 / 8 = 2 were due
    ("DFAF d2d2|" * 15 + "fafe dBd2|", 0.5),
    # the same 16 bars with a double bar after the eighth, both strains home: the credit is back
    ("DFAF d2d2|" * 7 + "DFAF d2d2||" + "DFAF d2d2|" * 7 + "fafe dBd2|]", 1.0),
    # 8 bars, one strain on the dominant... the last: no half credit for the tune's own end
    ("DFAF d2d2|" * 7 + "fafe dBA2|]", 0.0),
    # 24 bars, two marked strains home: 3 were due (24 / 8), so 2 of 3
    ("DFAF d2d2|" * 11 + "DFAF d2d2||" + "DFAF d2d2|" * 11 + "fafe dBd2|]", 2 / 3),
    # a short tune (4 bars) still owes one cadence, and has it
    ("DFAF d2d2|fafe dBd2|DFAF d2d2|fafe dBd2|]", 1.0),
    # no notes: the rule does not apply
    ("z8|z8|]", None),
]


@pytest.mark.parametrize("body,expected", STRAIN_CADENCES)
def test_strain_cadences(body, expected):
    got = score("strain_cadences", [HEAD + body])[0]
    assert got == (expected if expected is None else pytest.approx(expected))


def test_strain_cadences_equal_cadences_when_the_strains_are_all_there():
    # the two rewards differ only where a tune closes fewer strains than its length asks for
    tunes = [HEAD + body for body, _ in CADENCES if not body.startswith("K:")]
    assert score("strain_cadences", tunes) == score("cadences", tunes)


PHRASES = [
    # the third bar repeats the first; the second and the fourth bring new figures: 1 of 3 bars after the first
    ("|:ABcA|BAGB|ABcA|d2c2:|", 1 / 3),
    # a two-bar phrase stated twice: bar 3 repeats bar 1, bar 4 repeats bar 2 (and the pair (1,2))
    ("|:ABcA|FEDF|ABcA|FEDF:|", 2 / 3),
    # a sequence: the second bar is the first one scale step higher (in D, D E F# D then E F# G E: the same steps
    # along the scale though not the same semitones), so it counts as a repeat
    ("|:DEFD|EFGE|A2d2|c2B2:|", 1 / 3),
    # ... and so does ABcA then BcdB (up one step along D major's scale); d4, one note, has no figure: 1 of 2
    ("|:ABcA|BcdB|f2e2|d4:|", 1 / 2),
    # every bar new: nothing comes back
    ("|:DEFG|Adfa|gecA|d4:|", 0.0),
    # repeats are counted within a strain: the B strain's bar equal to the A strain's first bar is not one
    ("|:ABcA|dcBA:||:ABcA|FEDE:|", 0.0),
    # bars of one note have no figure: a strain needs 2 bars with figures, else the rule does not apply
    ("|:d8|D8:|", None),
]


@pytest.mark.parametrize("body,expected", PHRASES)
def test_phrase_repeats(body, expected):
    (got,) = score("phrase_repeats", [HEAD + body])
    assert got is None if expected is None else got == pytest.approx(expected)


@pytest.mark.parametrize("body,expected", PHRASES)
def test_phrase_repeats_dense_scores_as_phrase_repeats(body, expected):
    assert score("phrase_repeats_dense", [HEAD + body]) == score("phrase_repeats", [HEAD + body])


@pytest.mark.parametrize("body,bars", [
    # the third bar repeats the first: 1/3 (3 bars could come back) where the third bar's last note ends
    ("|:ABcA|BAGB|ABcA|d2c2:|", [3]),
    # bars 3 and 4 state the opening phrase again: 1/3 at each
    ("|:ABcA|FEDF|ABcA|FEDF:|", [3, 4]),
    # nothing comes back: no credit anywhere
    ("|:DEFG|Adfa|gecA|d4:|", []),
    # no strain of 2 bars with figures: no credit
    ("|:d8|D8:|", []),
])
def test_phrase_repeats_dense_credit_lands_at_the_bar_that_comes_back(body, bars):
    from rlmusic.rewards.registry import get

    tune = HEAD + body
    # the offset just after each bar's last note: where its closing bar line (`|` or `:|`) starts
    ends = [i for i, c in enumerate(tune) if c in "|:" and i > len(HEAD) and tune[i - 1] not in "|:"]
    (credits,) = get("phrase_repeats_dense").fn.per_note([tune])
    assert credits == [(ends[k - 1], pytest.approx(1 / 3)) for k in bars]
    # the credits sum to the score: a share, so writing more bars earns nothing by itself
    assert sum(c for _, c in credits) == pytest.approx(score("phrase_repeats", [tune])[0] or 0.0)


def test_phrase_repeats_dense_credit_does_not_grow_with_length():
    """The same 4-bar strain played 1, 2 and 4 times over: more bars come back, the credit stays a share."""
    from rlmusic.rewards.registry import get

    strain = "ABcA|BAGB|ABcA|d2c2|"
    totals = [sum(c for _, c in get("phrase_repeats_dense").fn.per_note([HEAD + "|:" + strain * k + ":|"])[0])
              for k in (1, 2, 4)]
    assert max(totals) <= 1.0 and totals == sorted(totals)  # a share, growing only as the share grows


def _reference():
    """A hand-made 'corpus' distribution: every feature spread evenly over a known range."""
    from rlmusic.realness import FEATURES

    ranges = {"pitch_range": (5, 20), "distinct_pitches": (4, 12), "mean_abs_interval": (1, 4),
              "notes_per_bar": (3, 9), "bars_per_tune": (8, 40), "mean_note_length": (0.08, 0.3)}
    return {f: np.linspace(*ranges[f], 101) for f in FEATURES}


TYPICAL = [
    # a 16-bar jig-like tune in the middle of every range: typical
    ("|:" + "DFAF dfed|cBAG FGAB|" * 4 + ":|", 0.25, 1.0),
    # one note held for 60 bars: no range, one pitch, too many bars: far outside on every feature
    ("|" + "D8|" * 60, 0.0, 0.05),
]


@pytest.mark.parametrize("body,low,high", TYPICAL)
def test_typical(body, low, high):
    (value,) = score("typical", [HEAD + body], typical_reference=_reference())
    assert low <= value <= high


@pytest.mark.parametrize("body,expected", [
    # a tune in the middle of every range: typical well above the guard's level, so the gate is open
    ("|:" + "DFAF dfed|cBAG FGAB|" * 4 + ":|", 1.0),
    # one note held for 60 bars: outside every range, the gate closes
    ("|" + "D8|" * 60, 0.0),
])
def test_typical_guard(body, expected):
    (value,) = score("typical_guard", [HEAD + body], typical_reference=_reference())
    assert value == pytest.approx(expected, abs=0.05)


def test_typical_gives_real_tunes_one_half_or_more():
    """Against the corpus' own distribution, tunes drawn like the corpus' average 0.5 or more (the tail share of a
    draw from the same continuous distribution is uniform; shared values, here the note length every tune has,
    count as typical): the guard does not punish real tunes, and an outlier scores far lower."""
    from rlmusic.rewards.music import typicality

    from rlmusic.realness import FEATURES, scalar_features

    rng = np.random.default_rng(0)
    reals = []
    for _ in range(300):  # tunes of random lengths and pitches, and a reference drawn the same way
        bars = rng.integers(4, 20)
        notes = "".join(rng.choice(list("DEFGABcdef"), 8 * bars))
        reals.append(HEAD + "|".join(notes[i:i + 8] for i in range(0, len(notes), 8)) + "|]")
    feats = [scalar_features(scan(t)) for t in reals]
    reference = {f: np.sort([x[f] for x in feats[:200]]) for f in FEATURES}
    mean = np.mean([typicality(scan(t), reference) for t in reals[200:]])
    assert 0.45 <= mean <= 0.9
    assert typicality(scan(HEAD + "|" + "D8|" * 60), reference) < 0.2
