"""MIDI files as training data (rlmusic/midi.py): a round trip on real tunes, bad files, a pretrain on MIDI."""

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli, set_args
from rlmusic.corpus import load_corpus
from rlmusic.errors import UserError
from rlmusic.midi import pick_voice

pytestmark = pytest.mark.skipif(not (shutil.which("midi2abc") and shutil.which("abc2midi")),
                                reason="midi2abc/abc2midi (Debian abcmidi) not installed")

sys.path.insert(0, str(REPO / "benchmarks"))


def to_midi(abc: str, path: Path) -> Path:
    src = path.with_suffix(".abc.txt")
    src.write_text(abc)
    subprocess.run(["abc2midi", str(src), "-o", str(path)], capture_output=True, cwd=path.parent, check=True)
    src.unlink()
    return path


def test_real_tunes_keep_their_melody_through_midi(tmp_path):
    """The README's figure comes from benchmarks/midi_roundtrip.py on 200 tunes (97 %); here 40 of them."""
    from midi_roundtrip import agreement, plain, round_trip

    tunes = [t for t in load_corpus(["essenFolksong", "oneills1850"]).tunes if plain(t)]
    random.Random(1).shuffle(tunes)
    same, why = agreement(round_trip(tunes[:40], tmp_path))
    assert same >= 34, why  # the large majority; the rest are quantisation of long notes and accidentals


def test_the_voice_with_the_most_notes_is_kept_and_percussion_never():
    text = ("X: 1\nT: from x.mid\nM: 4/4\nL: 1/8\nK:G\nV:1\nGABc d2B2|\nV:2\n%%MIDI channel 10\n"
            "G,G,G,G, G,G,G,G,|G,G,G,G, G,G,G,G,|\nV:3\n%%MIDI channel 2\nG4 D4|\n")
    tune, _ = pick_voice(text, "x")
    assert tune.endswith("GABc d2B2|") and "T:x" in tune  # not the longer drum voice
    tune, _ = pick_voice(text, "x", channel=2)
    assert tune.endswith("G4 D4|")
    assert pick_voice("X:1\nT:d\nK:C\nV:1\n%%MIDI channel 10\nCCCC|\n", "d") == (None, "percussion only")
    # continued lines are one line of music
    tune, _ = pick_voice("X: 1\nT: t\nK:C\nV:1\nCDEF| \\\nGABc|\n", "t")
    assert tune.endswith("CDEF| GABc|")


def _bad_files(tmp_path):
    not_midi = tmp_path / "letter.mid"
    not_midi.write_text("Dear friends, this is not a MIDI file.\n")
    good = to_midi("X:1\nT:a\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|dcBA GFED|\n", tmp_path / "good.mid")
    truncated = tmp_path / "cut.mid"
    truncated.write_bytes(good.read_bytes()[:40])
    drums = to_midi("X:1\nT:d\nM:4/4\nL:1/8\nK:C\n%%MIDI channel 10\nCCCC CCCC|CCCC CCCC|\n", tmp_path / "drums.mid")
    return {"not MIDI": not_midi, "truncated": truncated, "drums": drums, "good": good}


@pytest.mark.parametrize("case,reason", [
    ("not MIDI", "not a MIDI file"),  # a file named .mid that is not one
    ("truncated", "truncated MIDI file"),
    ("drums", "percussion only"),
])
def test_a_bad_midi_file_alone_is_one_error_naming_it(tmp_path, capsys, case, reason):
    path = _bad_files(tmp_path)[case]
    code, _, err = cli("pretrain", "--data", path, "--out", tmp_path / "run", *set_args(TINY), capsys=capsys)
    assert code == 2 and f"{path}: no usable tune ({reason})" in err
    assert not (tmp_path / "run").exists()


def test_bad_files_among_good_ones_are_dropped_and_reported(tmp_path):
    files = _bad_files(tmp_path)
    corpus = load_corpus([str(p) for p in files.values()])
    assert len(corpus.tunes) == 1 and corpus.tunes[0].startswith("X:1\nT:good\n")
    summary = corpus.stats.summary()
    assert "MIDI: 4 files, 1 converted, 3 dropped" in summary
    assert "1 not a MIDI file" in summary and "1 truncated MIDI file" in summary and "1 percussion only" in summary


def test_without_midi2abc_a_midi_file_names_the_package(tmp_path, monkeypatch):
    from rlmusic import midi

    path = _bad_files(tmp_path)["good"]
    monkeypatch.setattr(midi, "midi2abc_path", lambda: None)
    with pytest.raises(UserError, match=r"reading MIDI needs midi2abc, from the Debian package abcmidi"):
        load_corpus([str(path)])


def test_pretrain_on_a_folder_of_midi_files(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    tunes = load_corpus(["oneills1850"]).tunes[:12]
    for i, t in enumerate(tunes):
        to_midi(t + "\n", folder / f"tune{i:02d}.mid")
    code, _, err = cli("pretrain", "--data", folder, "--out", tmp_path / "run", *set_args(TINY), capsys=capsys)
    assert code == 0, err
    assert "MIDI: 12 files, 12 converted, 0 dropped" in err
    import json

    corpus = json.loads((tmp_path / "run" / "corpus.json").read_text())
    assert corpus["midi_converted"] == 12 and corpus["tunes_kept"] == 12
