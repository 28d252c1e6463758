"""The abc2midi check: per-tune errors from one process, and no tune passed unread when abc2midi aborts."""

import shutil
from pathlib import Path

import pytest

from rlmusic import validity
from rlmusic.corpus import read_abc_file, split_tunes

pytestmark = pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) not installed")
DATA = Path(__file__).parent / "data"
GOOD = "X:1\nT:Good\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|c2A2 A4|]"
BAD = "X:1\nT:Bad\nM:4/4\nL:1/8\nK:G\nGABc d&&(|dedB ded[B|]"  # a chord never closed, stray characters


def test_errors_land_on_their_own_tunes():
    errors = validity.abc2midi_errors([GOOD, BAD, GOOD])
    assert errors[0] == [] and errors[1] and errors[2] == []


def test_tunes_after_an_abort_are_still_checked():
    """abc2midi 4.x aborts (buffer overflow) on this pair; the tunes after them must not pass unread."""
    # not named .abc: tests/data is also a test corpus of valid tunes
    pair = split_tunes(read_abc_file(DATA / "abc2midi_abort.abc.txt"))
    assert len(pair) == 2
    alone = [validity.abc2midi_errors([t])[0] for t in pair]
    errors = validity.abc2midi_errors(pair + [GOOD, BAD, GOOD, BAD])
    assert [bool(e) for e in errors] == [bool(alone[0]), bool(alone[1]), False, True, False, True]
    assert validity.valid_rate(pair + [GOOD, BAD]) == 0.25
