"""The ABC grammar read one character at a time (rlmusic/grammar.py) and its compiled masks (rlmusic/constrain.py).

Each case of the tables is a hand-written tune; where abc2midi is installed, its verdict is checked too, so the
tables say what abc2midi does, not only what the grammar does."""

import json

import numpy as np
import pytest

from rlmusic import validity
from rlmusic.constrain import BLOCKED, CompiledGrammar
from rlmusic.envs.composition import default_vocab
from rlmusic.grammar import END, AbcGrammar

G = AbcGrammar()
H = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"
needs_abc2midi = pytest.mark.skipif(validity.abc2midi_path() is None, reason="abc2midi is not installed")

ACCEPTED = [
    # (comment, music after the K: line): valid ABC, abc2midi reads it without an error
    ("notes, lengths, octaves", "A2 B/ c// d3/2 e'2 G,2 z2|"),
    ("accidentals and a natural", "^c2 _B2 =F2 ^^G2|"),
    ("a tie across a plain bar line, the accidental written once", "^c4- c4-|c8|"),
    ("a tie across decorations and a slur", "D4- .D2 (AB)|G2-) G6|"),
    ("broken rhythm between notes of equal length, also staccato on both", "A>B c<d (.B>.c) z2|"),
    ("broken rhythm after a chord: abc2midi does not check it", "[CE]2>G c2 d2 e2|"),
    ("a triplet and a (p:q:r tuplet", "(3ABc (3:2:2de f2|"),
    ("chords, a chord symbol, bowing before a chord", '"Am7"[CEG]2 "G/B"[B,D]2 v[ce]2 z2|'),
    ("grace notes, then a note; grace notes before a bar line", "{g}A2 {/e}d2 (3{a}BAG c {d}|c8|"),
    ("decorations before notes", "!trill!c2 !fermata!d2 ~e2 Tf2|"),
    ("a repeat with two endings", "|:A8|1B8:|2c8|]"),
    ("`::` ends a repeat from the start and opens the next", "A8 B8::c8 d8:|"),
    ("`:||:` ends one repeat and opens the next", "|:A8:||:B8:|"),
    ("a second ending as [2 after a space", "|:A8|1B8:| [2c8|]"),
    ("an inline key change and a body field line", "A8|[K:D]d8|\nM:6/8\nL:1/8\nabc def|"),
    ("a line continuation and a comment", "A8|\\\nB8| % last bar"),
    ("a `)` that closes no slur, and a slur left open: abc2midi reads both", "A2) B2 (c2 d2|"),
    ("the spacers abc2midi skips", "A`B y c2 k d2 e2|"),
    ("a voice with repeats of its own", "|:A8:|[V:2]|:B8:|"),
    ("a roll in broken rhythm with a plain note or a roll (corpus tunes have both)", "~G>F e>~f ~a>~a z2|"),
    ("grace notes again after a rest or a chord", "{c}z2{d}e2 {e}[df]2{c}d2|"),
]

REJECTED = [
    # (comment, music after the K: line, offset in the music of the first character no valid tune has there, or
    #  None where the tune cannot end, abc2midi's verdict: True = an error there too, False = the grammar is
    #  stricter than abc2midi on purpose)
    ("a tie to another note", "d4-e4|", 3, True),
    ("a tie to a rest", "d4-z4|", 3, True),
    ("a tie that nothing continues", "d8-|", None, True),
    ("a tie across two bar lines", "d4-|||d4|", 5, False),
    ("broken rhythm between unequal notes", "A2>B c2 d2|", 4, True),
    ("two broken rhythms in a row", "A>B>c d4|", 3, True),
    ("a comma after a lower-case letter", "c,2 d2 e4|", 1, True),
    ("a length abc2midi crashes on (`/3` could still become `/32`)", "E/3F/ A2 B4|", 3, True),
    ("a decoration letter before a bar line", "A2 H|B6|", 4, True),
    ("a roll after grace notes", "{g}~A2 B6|", 3, True),
    ("grace notes at the end of the tune", "A8 {g}", None, True),
    ("a chord symbol abc2midi does not know", '"Gxx"A8|', 2, True),
    ("an unknown mode", None, None, True),  # the K: line itself, below
    ("`::` after an end repeat with no `|:` between", "|:A8:|B8::c8:|", 10, True),
    ("`|:` while a `|:` is open (the sign ends at the note after it)", "|:A8|:B8:|", 6, True),
    ("a first ending never closed", "A8|1B8|]", None, True),
    ("a second ending with no first ending closed before it", "A8|2B8|]", 3, True),
    ("a rest inside a chord", "[Cz]2 A6|", 2, False),
    ("a roll after grace notes and the end of a slur", "(A2{g}) ~B6|", 8, True),
    ("a voice starting while a repeat is open", "|:A8|[V:2]B8:|", 9, True),
    ("a digit where no length can be", "A2 3B6|", 3, True),
    # found by random walks under the mask (benchmarks/grammar.py random):
    ("grace notes again with only a decoration since the last", "{B}!5!{A}F6|", 6, True),
    ("grace notes again with only a chord symbol since the last", '{c}"G"{d}e6|', 6, True),
    ("a roll after grace notes and a staccato dot", "{B}.~B6 d|", 4, True),
    ("a roll in broken rhythm with a staccato note", "~A>.G B4 c2|", 5, True),
    ("broken rhythm from a rest a fermata lengthens (known when f ends)", "Hz>f B4 c2|", 4, True),
]


@pytest.mark.parametrize("comment,music", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted(comment, music):
    assert G.first_error(H + music) is None


@needs_abc2midi
def test_accepted_tunes_are_abc2midis_too():
    found = validity.abc2midi_errors([H + m for _, m in ACCEPTED])
    assert {c: e for (c, _), e in zip(ACCEPTED, found) if e} == {}


def _rejected_tune(music):
    return H.replace("K:G", "K:Gxyz") + "A8|" if music is None else H + music


@pytest.mark.parametrize("comment,music,at,abc2midi", REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected_where_it_arises(comment, music, at, abc2midi):
    tune = _rejected_tune(music)
    if music is None:  # the K: value: rejected at the first letter no key has
        assert G.first_error(tune) == tune.index("K:Gxyz") + 3
    else:
        assert G.first_error(tune) == (len(tune) if at is None else len(H) + at)


@needs_abc2midi
def test_rejected_tunes_abc2midi_rejects_too():
    tunes = [_rejected_tune(m) for _, m, _, _ in REJECTED]
    verdicts = [bool(e) for e in validity.abc2midi_errors(tunes)]
    assert verdicts == [a for *_, a in REJECTED]


HEADER_CASES = [
    # (comment, header text, accepted as the start of a tune)
    ("the primer", "X:1\n", True),
    ("X: first", "T:t\n", False),
    ("X: takes a number", "X:a", False),
    ("K: needs T: and M: before it", "X:1\nM:4/4\nK", False),
    ("a meter abc2midi knows", "X:1\nT:t\nM:6/8\n", True),
    ("a meter it does not", "X:1\nT:t\nM:6/7\n", False),
    ("a key with its mode spelt out", "X:1\nT:t\nM:4/4\nK:A Mixolydian\n", True),
    ("a tempo with a power of two", "X:1\nT:t\nM:4/4\nQ:1/4=120\n", True),
    ("a tempo without one", "X:1\nT:t\nM:4/4\nQ:1/3=120\n", False),
    ("no blank line inside the header", "X:1\nT:t\n\n", False),
]


@pytest.mark.parametrize("comment,text,ok", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_header(comment, text, ok):
    state = G.run(text)
    assert (state is not None and state is not END) == ok


def test_can_end_and_the_blank_line():
    open_repeat, closed = G.run(H + "|:A8|"), G.run(H + "|:A8:|")
    assert not G.can_end(open_repeat) and G.can_end(closed)
    assert G.run(H + "|:A8:|\n\n") is END and G.run(H + "|:A8|\n\n") is None
    assert not G.can_end(G.run(H))  # no note yet


def test_parts_named_in_the_header_must_be_played():
    header = "X:1\nT:t\nM:4/4\nP:AB\nK:G\n"
    assert not G.accepts(header + "P:A\nA8|")  # abc2midi: Part not defined
    assert G.accepts(header + "P:A\nA8|\nP:B\nB8|")
    assert not G.accepts(header + "P:A\nA8|\nP:A\nB8|\nP:B\nB8|")  # abc2midi: Part defined more than once
    assert not G.accepts(header.replace("P:AB", "P:Ab") + "P:A\nA8|")  # abc2midi: illegal character in P:


@needs_abc2midi
def test_part_rules_are_abc2midis():
    header = "X:1\nT:t\nM:4/4\nP:AB\nK:G\n"
    tunes = [header + "P:A\nA8|\nP:B\nB8|", header + "P:A\nA8|\nP:A\nB8|\nP:B\nB8|",
             header.replace("P:AB", "P:Ab") + "P:A\nA8|\nP:b\nB8|", header + "P:A\nA8|"]
    assert [bool(e) for e in validity.abc2midi_errors(tunes)] == [False, True, True, True]


def test_corpus_tunes_abc2midi_reads_are_accepted(data_dir):
    from rlmusic.corpus import load_corpus

    tunes = load_corpus([str(data_dir / "reels.abc")]).tunes
    rejected = [t for t in tunes if not G.accepts(t)]
    assert len(tunes) > 0 and rejected == []


# --- compiled masks ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compiled():
    return CompiledGrammar(default_vocab().chars)


def _walk(cg, rng, max_new, rows=32, primer="X:1\n", weights=None):
    """Random walks over the allowed characters: the texts written, and whether every row ended."""
    sids = np.full(rows, cg.start(primer))
    texts = [""] * rows
    for t in range(max_new):
        masks = cg.masks(sids, max_new - t)
        assert masks.any(axis=1).all(), "a state with no allowed character"
        p = masks * (weights if weights is not None else 1.0)
        acts = np.array([rng.choice(len(row), p=row / row.sum()) for row in p])
        texts = [x + (cg.chars[a] if s != cg.end_id else "") for x, a, s in zip(texts, acts, sids)]
        sids = cg.advance(sids, acts)
    return [primer + x for x in texts], (sids == cg.end_id).all()


def test_random_walks_end_valid_within_the_limit(compiled):
    rng = np.random.default_rng(0)
    vocab = default_vocab()
    weights = np.array([8.0 if c in "ABCDEFGabcdefg|2 /:>()[]{}^_=,'-\n3z!\".~" else 1.0 for c in vocab.chars])
    for max_new in (40, 150):
        texts, ended = _walk(compiled, rng, max_new, weights=weights)
        assert ended, "every tune ends within max_length"
        for text in texts:
            assert text.endswith("\n\n") and len(text) - len("X:1\n") <= max_new
            assert G.accepts(text[:-2])


def test_every_filled_state_has_its_close_allowed(compiled):
    # the tables themselves: from every state met, the first character of its close is allowed and costs
    # exactly its distance, so a tune can always end in the characters left
    rng = np.random.default_rng(1)
    _walk(compiled, rng, 120, rows=16)
    for sid, state in enumerate(compiled.states):
        row = compiled.row_of[sid]
        if row < 0 or state is END:
            continue
        d = compiled.distance(state)
        assert d is not None and compiled.cost[row].min() <= d


def test_a_primer_no_valid_tune_starts_with_is_an_error(compiled):
    from rlmusic.errors import UserError

    with pytest.raises(UserError, match="no valid ABC tune starts with"):
        compiled.start("X:1\nK")
    assert compiled.start("X:1\nT:Jig\nM:6/8\nK:D\n") != compiled.start("X:1\n")


def test_no_row_allows_a_character_the_machine_refuses(compiled):
    rng = np.random.default_rng(2)
    _walk(compiled, rng, 60, rows=8)
    for sid, state in enumerate(compiled.states[:300]):
        row = compiled.row_of[sid]
        if row < 0 or state is END:
            continue
        for v in np.flatnonzero(compiled.cost[row] < BLOCKED):
            assert G.step(state, compiled.chars[v]) is not None


def test_corpus_tunes_json_round_trip_through_the_tables(compiled, data_dir):
    # stepping a real tune through the tables gives the machine's own verdict, character by character
    from rlmusic.corpus import load_corpus

    tune = load_corpus([str(data_dir / "reels.abc")]).tunes[0]
    sid = compiled.start("X:1\n")
    for ch in tune[4:] + "\n\n":
        assert compiled.masks(np.array([sid]), 10_000)[0, compiled.index[ch]], json.dumps(ch)
        sid = int(compiled.advance(np.array([sid]), np.array([compiled.index[ch]]))[0])
    assert sid == compiled.end_id
