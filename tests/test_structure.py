"""Strains and the second-strain-answers metric, on hand-written tunes."""

import pytest

from rlmusic.abc import scan
from rlmusic.structure import second_strain_answers, strains

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n"


@pytest.mark.parametrize("body,expected", [
    # repeated A and B strains, B ends on A's cadence bar (d2 A2 d4): answers
    ("|:ABcd efge|fdec d2A2|ABcd efge|d2A2 d4:|\n|:fgaf gbag|fgaf e2c2|fgaf gbag|d2A2 d4:|", True),
    # B shares no figure with A and ends elsewhere: does not answer
    ("|:ABcd efge|fdec d2A2|ABcd efge|d2A2 d4:|\n|:FGAF GBAG|FGAF E2C2|FGAF GBAG|E2C2 E4:|", False),
    # B takes 2 of its 4 figures from A (a quarter or more) but ends elsewhere: answers
    ("|:ABcd efge|fdec d2A2|ABcd efge|d2A2 d4:|\n|:FGAF GBAG|ABcd efge|fdec d2A2|E2C2 E4:|", True),
    # double bars mark the strains as well as repeats do
    ("ABcd efge|fdec d2A2|ABcd efge|d2A2 d4||\nFGAF GBAG|FGAF E2C2|FGAF GBAG|d2A2 d4|]", True),
    # one strain only (no boundary inside): undefined
    ("ABcd efge|fdec d2A2|ABcd efge|d2A2 d4|", None),
    # a second "strain" of one bar is not a strain: undefined
    ("|:ABcd efge|fdec d2A2|ABcd efge|d2A2 d4:|\n|:d2A2 d4:|", None),
])
def test_second_strain_answers(body, expected):
    assert second_strain_answers(HEAD + body) is expected


def test_strains_hold_bar_figures():
    tune = HEAD + "|:ABcd efge|fdec d2A2:|\n|:fgaf gbag|d2A2 d4:|"
    found = strains(scan(tune), tune)
    assert len(found) == 2 and len(found[0]) == 2 and len(found[1]) == 2
    assert found[0][0] == (69, 71, 73, 74, 76, 78, 79, 76)  # ABcd efge in D: c and f are sharp
    assert found[1][1] == (74, 69, 74)  # d2A2 d4
