"""Tune splitting and cleaning, on hand-written ABC."""

import pytest

from rlmusic.corpus import (clean_tune, join_tunes, load_corpus, read_abc_file, repair_body_line,
                            split_train_val, split_tunes)
from rlmusic.errors import UserError

SPLIT_CASES = [
    # (comment, text, expected number of tunes, expected first line of each)
    ("two tunes separated by a blank line", "X:1\nK:C\nCDE|\n\nX:2\nK:G\nGAB|\n", 2, ["X:1", "X:2"]),
    ("a blank line inside a tune does not cut it", "X:1\nK:C\nCDE|\n\nEDC|\nX:2\nK:G\nG|\n", 2, ["X:1", "X:2"]),
    ("file header text before the first X: is not a tune", "%abc-2.1\nsome notes\n\nX:5\nK:D\nD|\n", 1, ["X:5"]),
    ("no X: line at all: no tunes", "T:Lonely\nK:C\nCDE|\n", 0, []),
    ("X: must start the line", "T:x X:1\nK:C\nC|\n", 0, []),
]


@pytest.mark.parametrize("comment,text,n,firsts", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_tunes(comment, text, n, firsts):
    tunes = split_tunes(text)
    assert len(tunes) == n
    assert [t.split("\n")[0] for t in tunes] == firsts


CLEAN_CASES = [
    # (comment, raw tune, expected cleaned tune or None, expected drop reason)
    ("headers normalised: X:1, no space after the colon, T: right after X:, K: last",
     "X: 17\nM: 6/8\nT: Jig\nL: 1/8\nK: D\nABc|", "X:1\nT:Jig\nM:6/8\nL:1/8\nK:D\nABc|", ""),
    ("free-text fields (N: Z: B: O: S:) and I: lines dropped; R: kept",
     "X:1\nT:t\nN:slow\nZ:me@x.org\nB:book\nO:Ireland\nS:src\nI:abc-charset utf-8\nR:reel\nM:C\nK:G\nG|",
     "X:1\nT:t\nR:reel\nM:C\nK:G\nG|", ""),
    ("% comments and %% directives stripped",
     "X:1\nT:t\n%%scale 0.8\nK:C % the key\nCDE| % bar one\n", "X:1\nT:t\nK:C\nCDE|", ""),
    ("an escaped \\% is not a comment",
     "X:1\nT:t\nK:C\nC\\%D|\n", "X:1\nT:t\nK:C\nC\\%D|", ""),
    ("blank lines inside the tune removed (ABC would end the tune there)",
     "X:1\nT:t\nK:C\nCDE|\n\n\nEDC|", "X:1\nT:t\nK:C\nCDE|\nEDC|", ""),
    ("fingerings and text annotations dropped, chord symbols kept",
     'X:1\nT:t\nK:C\n"4"c"Am"A "^SEGUE"B "G7"G|', 'X:1\nT:t\nK:C\nc"Am"A B "G7"G|', ""),
    ("mid-tune K: and M: kept, mid-tune N: and W: dropped",
     "X:1\nT:t\nK:C\nCDE|\nK:G\nN:note\nW:words\nM:3/4\nGAB|", "X:1\nT:t\nK:C\nCDE|\nK:G\nM:3/4\nGAB|", ""),
    ("no K: field: dropped", "X:1\nT:t\nM:4/4\n", None, "no K: field"),
    ("music before K: means the header never closed: dropped", "X:1\nT:t\nCDE|\nK:C\n", None, "no K: field"),
    ("a header without notes: dropped", 'X:1\nT:t\nK:C\n"Am" z4|', None, "no notes"),
]


@pytest.mark.parametrize("comment,raw,expected,reason", CLEAN_CASES, ids=[c[0] for c in CLEAN_CASES])
def test_clean_tune(comment, raw, expected, reason):
    assert clean_tune(raw) == (expected, reason)


REPAIR_CASES = [
    # (comment, line, repaired)
    ("decoration before a slur moves inside it", "v(c<A)(A>.B) ~(GA)", "(vc<A)(A>.B) (~GA)"),
    ("decoration before a tuplet is dropped", "u((3DEF)|", "((3DEF)|"),
    ("fermata on a bar line (no note to hold) is dropped", "G2 G H|]", "G2 G |]"),
    ("staccato dot before a closing slur is dropped", "(.G.A.B.) E2", "(.G.A.B) E2"),
    ("quoted-printable debris decoded", "(f|=3Dg) A2|=20", "(f|=g) A2| "),
    ("tie between different pitches dropped, between equal pitches kept", "G3-A A2-A B-B,", "G3A A2-A BB,"),
    ("text inside quotes and !decorations! is left alone", '"Gm"G !trill!(AB)', '"Gm"G !trill!(AB)'),
    ("invisible bar lines go", "a2=ge:[|]|] cB[|]", "a2=ge:|] cB"),
    ("inline fields are left alone", "[K:Ador] A2 [M:3/4]", "[K:Ador] A2 [M:3/4]"),
]


@pytest.mark.parametrize("comment,line,repaired", REPAIR_CASES, ids=[c[0] for c in REPAIR_CASES])
def test_repair_body_line(comment, line, repaired):
    assert repair_body_line(line) == repaired


def test_latin1_file_is_read(data_dir):
    text = read_abc_file(data_dir / "lieder_latin1.abc")
    assert "Lied über Berge" in text


def test_load_corpus_counts(data_dir):
    corpus = load_corpus([str(data_dir)])
    assert corpus.stats.files == 2
    assert corpus.stats.tunes_found == 8 and corpus.stats.tunes_kept == 8
    assert all(t.startswith("X:1\nT:") for t in corpus.tunes)


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"just some words\nno tunes here\n", "no ABC tune found"),
    (b"X:1\nT:no key\nX:2\nT:still none\n", "no usable ABC tune"),
])
def test_bad_files_are_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.abc"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_corpus([str(path)])
    assert message in str(err.value) and str(path) in str(err.value)


def test_split_train_val_is_by_tune_and_deterministic():
    tunes = [f"X:1\nT:{i}\nK:C\nC|" for i in range(40)]
    train, val = split_train_val(tunes, 0.25, seed=3)
    assert len(val) == 10 and sorted(train + val) == sorted(tunes)
    assert split_train_val(tunes, 0.25, seed=3) == (train, val)
    assert split_train_val(tunes, 0.25, seed=4)[1] != val


def test_join_tunes_ends_each_tune_with_a_blank_line():
    assert join_tunes(["X:1\nK:C\nC|", "X:1\nK:D\nD|"]) == "X:1\nK:C\nC|\n\nX:1\nK:D\nD|\n\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig", "utf-32"])
def test_files_with_a_byte_order_mark_are_read(tmp_path, encoding):
    """UTF-16 (what Windows editors write) used to be called "a binary file"."""
    path = tmp_path / "tunes.abc"
    text = "X:1\nT:Caoineadh\nM:3/4\nK:Ador\nABc|\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    assert read_abc_file(path) == text


def test_a_single_tune_is_not_enough_to_train(tmp_path, capsys):
    from conftest import TINY, cli, set_args

    one = tmp_path / "one.abc"
    one.write_text("X:1\nT:a\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc|" * 8 + "\n")
    code, _, err = cli("pretrain", "--data", one, "--out", tmp_path / "run", *set_args(TINY), capsys=capsys)
    assert code == 2 and "1 usable tune found; at least 2 are needed" in err
    assert not (tmp_path / "run").exists()


def test_two_short_tunes_train(tmp_path):
    """Shorter than a window: whole-tune windows are padded (random windows explain what is too short)."""
    from conftest import TINY, cli, set_args

    two = tmp_path / "two.abc"
    two.write_text("X:1\nT:a\nM:4/4\nK:C\nCDEF|\n\nX:2\nT:b\nM:4/4\nK:G\nGABc|\n")
    assert cli("pretrain", "--data", two, "--out", tmp_path / "run", *set_args(TINY + ["data.val_fraction=0.5",
                                                                                      "train.seq_length=64"]))[0] == 0


def test_an_endless_tune_is_dropped_without_being_kept():
    """A huge junk file with one X: line: the tune is given up once too long (memory stays small)."""
    from rlmusic.corpus import iter_tunes

    lines = (f"line {i} " + "z" * 50 for i in range(100_000))  # ~6 MB, generated lazily
    got = list(iter_tunes(iter(["X:1\n", "K:C\n", *[next(lines) for _ in range(10)]]), max_chars=100))
    assert got == [None]
    assert list(iter_tunes(["X:1", "K:C", "ABC|", "X:2", "K:D", "DEF|"], max_chars=100)) == [
        "X:1\nK:C\nABC|", "X:2\nK:D\nDEF|"]


def test_large_corpora_show_reading_progress(tmp_path, monkeypatch, capsys):
    from rlmusic import corpus

    path = tmp_path / "many.abc"
    path.write_text("".join(f"X:{i}\nT:t\nM:4/4\nK:C\nCDEF|GABc|\n\n" for i in range(1, 200)))
    monkeypatch.setattr(corpus, "PROGRESS_BYTES", 100)
    assert len(load_corpus([str(path)]).tunes) == 199
    assert "reading tunes" in capsys.readouterr().err
