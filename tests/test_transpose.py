"""Transposition (rlmusic/transpose.py) and `data.transpose`: table-driven on hand-written ABC."""

import shutil

import pytest

from rlmusic.abc import scan
from rlmusic.transpose import INTERVALS, transpose

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\n"

# (tune body after the header, key, semitones, expected key line, expected body)
MOVES = [
    # plain notes in D up a tone: letters move one step, the signature does the rest
    ("K:D", "DEFG ABcd|]", 2, "K:E", "EFGA Bcde|]"),
    # down a tone to C: no accidental needed anywhere
    ("K:D", "DEFG ABcd|]", -2, "K:C", "CDEF GABc|]"),
    # an explicit accidental stays written, and moves with the note (G# in D -> A# in E)
    ("K:D", "G^GA2|]", 2, "K:E", "A^AB2|]"),
    # a natural against the key (c in D) becomes a flat in C (Bb); a later c in the bar carries it, unwritten
    ("K:D", "=cBc2|]", -2, "K:C", "_BAB2|]"),
    # the bar line ends the carried accidental: the next bar's c is the key's C#, so B natural in C
    ("K:D", "=c2c2|c4|]", -2, "K:C", "_B2B2|B4|]"),
    # mode kept: A dorian up a fourth is D dorian (the tonic spelled with fewest accidentals)
    ("K:Ador", "ABcd e2|]", 5, "K:Ddor", "defg a2|]"),
    # a minor key down a semitone: Eb minor and D# minor both have 6 accidentals; D# is one letter step down,
    # the nearer to a semitone, so it wins, and the notes need no accidental (the signature has them all)
    ("K:Em", "EFGA B2|]", -1, "K:D#m", "DEFG A2|]"),
    # octave marks: a low G, moved down a fourth, is D, (and D is A,)
    ("K:G", "G,Dg2|]", -5, "K:D", "D,A,d2|]"),
    # up across the octave: b becomes e', the highest note kept
    ("K:G", "Bb|]", 5, "K:C", "ee'|]"),
    # chord symbols move root and bass, annotations stay
    ("K:G", '"G"G2 "D7/F#"F2 "^fine"G4|]', 2, "K:A", '"A"A2 "E7/G#"G2 "^fine"A4|]'),
    # chords and grace notes move note by note; lengths, ties and decorations stay
    ("K:G", "{g}[GBd]2- [GBd]2 !trill!c3/2|]", 2, "K:A", "{a}[Ace]2- [Ace]2 !trill!d3/2|]"),
    # a tie carries an accidental across the bar line on both sides, so the tied note is not written again
    ("K:C", "^F4-|F4|]", 2, "K:D", "^G4-|G4|]"),
    # an inline key change moves too, and from there the notes follow the new key
    ("K:G", "GABc [K:D] defg|]", 2, "K:A", "ABcd [K:E] efga|]"),
    # comments and the other fields are left as they were
    ("K:G", "GABc % a comment in G\nw: G A B c", 2, "K:A", "ABcd % a comment in G\nw: G A B c"),
]


@pytest.mark.parametrize("key,body,semitones,new_key,new_body", MOVES)
def test_moves(key, body, semitones, new_key, new_body):
    moved = transpose(f"{HEAD}{key}\n{body}", semitones)
    assert moved == f"{HEAD}{new_key}\n{new_body}"


@pytest.mark.parametrize("key,body,semitones,new_key,new_body", MOVES)
def test_pitches_move_by_the_interval_and_back(key, body, semitones, new_key, new_body):
    tune = f"{HEAD}{key}\n{body}"
    moved = transpose(tune, semitones)
    before = [n.pitch for n in scan(tune).notes if n.pitch is not None]
    after = [n.pitch for n in scan(moved).notes if n.pitch is not None]
    assert after == [p + semitones for p in before]
    assert transpose(moved, -semitones) == tune  # up then down gives the tune back


REFUSED = [
    # no key to move: K:none
    ("K:none", "CDEF|]", 2),
    # the bagpipe key has no spelling to move
    ("K:HP", "CDEF|]", 2),
    # explicit accidentals in K: are not a key signature this module can move
    ("K:D exp ^f", "CDEF|]", 2),
    # a note that would leave the compass (e' is the highest kept): a'' up a fourth
    ("K:C", "ca'|]", 5),
    # too low: C, down a tone
    ("K:C", "C,D|]", -2),
]


@pytest.mark.parametrize("key,body,semitones", REFUSED)
def test_refused(key, body, semitones):
    assert transpose(f"{HEAD}{key}\n{body}", semitones) is None


def test_every_interval_of_all_on_a_tune_with_accidentals():
    tune = f"{HEAD}K:Dmix\n|:\"D\"FA^cd =cAG^F|\"G\"G2- G/A/B c2 d2:|"
    before = [n.pitch for n in scan(tune).notes]
    for k in INTERVALS:
        moved = transpose(tune, k)
        assert [n.pitch for n in scan(moved).notes] == [p + k for p in before], (k, moved)


def _abc2midi_pitches(text: str) -> list[int]:
    from music21 import midi

    from rlmusic.render import midi_bytes

    mf = midi.MidiFile()
    mf.readstr(midi_bytes(text))
    return [e.pitch for t in mf.tracks for e in t.events
            if e.type == midi.ChannelVoiceMessages.NOTE_ON and e.velocity]


@pytest.mark.skipif(not shutil.which("abc2midi"), reason="abc2midi is not installed")
@pytest.mark.parametrize("key,body,semitones,new_key,new_body", [m for m in MOVES if "[GBd]" not in m[1]])
def test_abc2midi_hears_the_interval(key, body, semitones, new_key, new_body):
    tune = f"{HEAD}{key}\n{body}\n"
    before, after = _abc2midi_pitches(tune), _abc2midi_pitches(transpose(tune, semitones))
    assert before and after == [p + semitones for p in before]


def test_data_transpose_adds_moved_training_tunes(tmp_path):
    from rlmusic.data import DataConfig, prepare

    src = tmp_path / "tunes.abc"
    tunes = [f"X:{i}\nT:t{i}\nM:4/4\nL:1/8\nK:G\nGABc dBAG|]\n" for i in range(1, 5)]
    src.write_text("\n".join(tunes))
    plain = prepare(DataConfig(sources=[str(src)], val_fraction=0.25, valid_only=False), log=lambda m: None)
    moved = prepare(DataConfig(sources=[str(src)], val_fraction=0.25, valid_only=False, transpose=[-2, 2]),
                    log=lambda m: None)
    assert len(moved.train) == 3 * len(plain.train) and moved.transposed == 2 * len(plain.train)
    assert moved.val == plain.val  # validation tunes are never moved
    assert {t.split("K:")[1][0] for t in moved.train} == {"F", "G", "A"}


@pytest.mark.parametrize("value,problem", [
    ("0", "not 0"),  # moving by nothing is not an augmentation
    ("12", "-11..11"),  # an octave: the compass check would refuse it anyway, so it is refused up front
    ("2,2", "twice"),  # the same interval twice would double its tunes silently
    ("most", "all"),  # a word other than all
])
def test_bad_transpose_settings(value, problem):
    from rlmusic import config
    from rlmusic.errors import UserError
    from rlmusic.pretrain import PretrainConfig

    with pytest.raises(UserError, match=problem):
        config.load(PretrainConfig, None, [f"data.transpose={value}"])
