"""The sampler: determinism, greedy equivalences, stopping, primers; and `python -m rlmusic sample`."""

import numpy as np
import pytest

from conftest import cli
from rlmusic._tf import tf
from rlmusic.errors import UserError
from rlmusic.rundir import load_model
from rlmusic.sample import Sampler, filter_logits, header_primer
from rlmusic.vocab import Vocab


class ScriptedModel:
    """Writes `text` one character per step whatever it is fed: the logits at input position j favour text[j+1].

    The state is the position, so the sampler's carried-state contract is exercised as with the LSTM.
    """

    def __init__(self, vocab: Vocab, text: str):
        ids = vocab.encode(text)
        self.table = tf.constant(np.eye(len(vocab), dtype=np.float32)[np.r_[ids[1:], ids[-1]]] * 30.0)

    def initial_state(self, batch):
        zero = tf.zeros([batch, 1])
        return [[zero, zero]]

    def __call__(self, tokens, states):
        pos = tf.cast(states[0][0][:, 0], tf.int32)
        steps = tf.shape(tokens)[1]
        idx = tf.minimum(pos[:, None] + tf.range(steps)[None, :], self.table.shape[0] - 1)
        new = tf.cast(pos + steps, tf.float32)[:, None]
        return tf.gather(self.table, idx), [[new, new]]


TEXT = "X:1\nT:Scripted\nM:4/4\nK:D\nABcd|\n\nX:1\nT:Next\nK:G\nGGGG|"
VOCAB = Vocab.from_text(TEXT + "Q")


def test_generation_stops_at_the_end_of_the_tune():
    tunes = Sampler(ScriptedModel(VOCAB, TEXT), VOCAB).generate(3, max_length=200)
    assert [t.text for t in tunes] == ["X:1\nT:Scripted\nM:4/4\nK:D\nABcd|"] * 3
    assert not any(t.hit_limit for t in tunes)


def test_generation_stops_at_the_length_limit_and_says_so():
    tunes = Sampler(ScriptedModel(VOCAB, TEXT), VOCAB).generate(2, max_length=12)
    assert [t.text for t in tunes] == ["X:1\nT:Script"] * 2
    assert all(t.hit_limit for t in tunes)


def test_primer_is_the_prefix_of_every_tune(tiny_run):
    model, vocab, _ = load_model(tiny_run)
    primer = "X:1\nT:Reel\nM:4/4\nL:1/8\nK:D\n"
    tunes = Sampler(model, vocab).generate(5, primer=primer, max_length=80, seed=3)
    assert all(t.text.startswith(primer) or t.text == primer.rstrip("\n") for t in tunes)


def test_same_seed_same_tunes_other_seed_other_tunes(tiny_run):
    model, vocab, _ = load_model(tiny_run)
    sampler = Sampler(model, vocab)
    a = [t.text for t in sampler.generate(6, max_length=60, seed=7)]
    b = [t.text for t in sampler.generate(6, max_length=60, seed=7)]
    c = [t.text for t in sampler.generate(6, max_length=60, seed=8)]
    assert a == b and a != c
    assert len(set(a)) > 1  # rows of one batch are not copies of each other


def test_top_k_1_and_tiny_temperature_equal_greedy(tiny_run):
    model, vocab, _ = load_model(tiny_run)
    sampler = Sampler(model, vocab)
    greedy = [t.text for t in sampler.generate(3, max_length=60, temperature=0.0)]
    top1 = [t.text for t in sampler.generate(3, max_length=60, top_k=1, seed=5)]
    cold = [t.text for t in sampler.generate(3, max_length=60, temperature=1e-4, seed=9)]
    assert greedy == top1 == cold
    assert len(set(greedy)) == 1  # greedy ignores the seed and the row


def test_step_by_step_sampling_follows_the_whole_sequence_logits(tiny_run):
    """Greedy decoding with carried state picks, at every position, the argmax of the whole-sequence model."""
    model, vocab, _ = load_model(tiny_run)
    text = Sampler(model, vocab).generate(1, max_length=60, temperature=0.0)[0].text
    ids = vocab.encode(text)
    logits, _ = model(ids[None, :-1])
    primer_len = len("X:1\n")
    np.testing.assert_array_equal(np.argmax(logits.numpy()[0], -1)[primer_len - 1:], ids[primer_len:])


def test_filter_logits_top_k_and_top_p():
    logits = tf.constant([[4.0, 3.0, 2.0, 1.0, 0.0]])
    kept = lambda out: (out.numpy()[0] > -1e8).tolist()  # noqa: E731
    assert kept(filter_logits(logits, 1.0, 2, 1.0)) == [True, True, False, False, False]
    assert kept(filter_logits(logits, 1.0, 0, 1.0)) == [True] * 5
    # softmax([4,3,2,1,0]) = .64 .23 .09 .03 .01: p=0.5 keeps one, p=0.8 keeps two, p=0.9 keeps three
    assert kept(filter_logits(logits, 1.0, 0, 0.5)) == [True, False, False, False, False]
    assert kept(filter_logits(logits, 1.0, 0, 0.8)) == [True, True, False, False, False]
    assert kept(filter_logits(logits, 1.0, 0, 0.9)) == [True, True, True, False, False]


def test_header_primer():
    assert header_primer(key="D", meter="6/8") == "X:1\nT:Untitled\nM:6/8\nK:D\n"
    assert header_primer(title="Jig") == "X:1\nT:Jig\n"


def test_primer_outside_the_vocabulary_is_refused():
    with pytest.raises(UserError, match="primer has characters outside the model's vocabulary: '€'"):
        Sampler(ScriptedModel(VOCAB, TEXT), VOCAB).generate(1, primer="X:1\nT:€\n")


def test_sample_cli_prints_abc(tiny_run, capsys):
    code, out, _ = cli("sample", "--checkpoint", tiny_run, "--num", 3, "--max-length", 40, "--seed", 2,
                       capsys=capsys)
    assert code == 0
    assert out.count("X:1\n") >= 3


def test_sample_cli_writes_files(tiny_run, tmp_path, capsys):
    out = tmp_path / "tunes"
    code, _, err = cli("sample", "--checkpoint", tiny_run, "--num", 2, "--max-length", 40, "--out", out,
                       "--formats", "abc", "--key", "G", "--meter", "3/4", "--title", "Test Reel", capsys=capsys)
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["tune_001.abc", "tune_002.abc"]
    assert all((out / f).read_text().startswith("X:1\nT:Test Reel\nM:3/4\nK:G\n") for f in files)
    assert "wrote 2 tunes" in err and "hit the length limit" in err


@pytest.mark.parametrize("args,message", [
    (["--checkpoint", "{tmp}/none"], "no such run directory"),
    (["--checkpoint", "{run}", "--formats", "abc,mp3"], "unknown format mp3"),
    (["--checkpoint", "{run}", "--primer", "X:1\\nT:€"], "outside the model's vocabulary"),
    (["--checkpoint", "{tmp}", ], "not a run directory"),
    # refused before any sampling work (it used to fail with a traceback after it)
    (["--checkpoint", "{run}", "--out", "{tmp}/file.txt"], "--out {tmp}/file.txt: is a file, not a folder"),
    (["--checkpoint", "{run}", "--temperature", "-1"], "argument --temperature: expected a number >= 0"),
    (["--checkpoint", "{run}", "--top-p", "2"], "argument --top-p: expected a number > 0 and <= 1"),
    (["--checkpoint", "{run}", "--num", "0"], "argument --num: expected a number >= 1"),
    (["--checkpoint", "{run}", "--key", "Zmaj"], "'Zmaj' is not an ABC key"),
    (["--checkpoint", "{run}", "--meter", "x/y"], "'x/y' is not an ABC meter"),
    # numbers past what the sampler computes with: a traceback (int64 overflow of the seed, int32 of top-k) or an
    # allocation for the whole limit, before these bounds
    (["--checkpoint", "{run}", "--seed", "10000000000000"], "argument --seed: expected a number >= 0"),
    (["--checkpoint", "{run}", "--top-k", "3000000000"], "argument --top-k: expected a number >= 0"),
    (["--checkpoint", "{run}", "--max-length", "1000000000"], "argument --max-length: expected a number >= 2"),
    (["--checkpoint", "{run}", "--title", "a\nK:C"], "argument --title: a title is one line"),
])
def test_sample_bad_inputs(tiny_run, tmp_path, capsys, args, message):
    (tmp_path / "file.txt").write_text("notes")
    args = [a.format(tmp=tmp_path, run=tiny_run) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    code, _, err = cli("sample", *args, capsys=capsys)
    assert code == 2 and message.format(tmp=tmp_path) in err and err.count("error:") == 1, err
    assert not (tmp_path / "o").exists()
    assert (tmp_path / "file.txt").read_text() == "notes"


def test_constrained_tunes_are_valid_and_end_within_max_length(tiny_run):
    from rlmusic.grammar import AbcGrammar

    model, vocab, _ = load_model(tiny_run)
    for max_length in (40, 120):
        tunes = Sampler(model, vocab).generate(8, max_length=max_length, seed=1, constrain="syntax")
        assert all(AbcGrammar().accepts(t.text) for t in tunes), [t.text for t in tunes]
        assert not any(t.hit_limit for t in tunes) and all(len(t.text) <= max_length for t in tunes)


def test_the_mask_renormalises_the_model_before_temperature_and_top_k():
    """A model that insists on a tune without M: writes it unmasked; masked, greedy, top-k 1 and a low temperature
    draw among the characters the grammar allows (the mask first, then the filters), and the tune is valid."""
    from rlmusic.grammar import AbcGrammar

    script = "X:1\nT:S\nK:D\nAB|\n\n"
    vocab = Vocab.from_text(script + "M:4/C")
    model = ScriptedModel(vocab, script)
    raw = Sampler(model, vocab).generate(1, max_length=40, temperature=0.0, constrain="none")[0].text
    assert raw == script.rstrip("\n") and not AbcGrammar().accepts(raw)
    for kwargs in (dict(temperature=0.0), dict(top_k=1, seed=3), dict(temperature=0.5, seed=4)):
        text = Sampler(model, vocab).generate(1, max_length=40, constrain="syntax", **kwargs)[0].text
        # the script is followed while the grammar allows it; its K: before any M: is not allowed
        assert text.startswith("X:1\nT:S\n") and text[8] != "K" and AbcGrammar().accepts(text), (kwargs, text)


def test_a_primer_no_valid_tune_starts_with_needs_constrain_none(tiny_run, capsys):
    code, _, err = cli("sample", "--checkpoint", tiny_run, "--num", 1, "--primer", "X:1\\nK:D\\n", capsys=capsys)
    assert code == 2 and "no valid ABC tune starts with" in err and err.count("error:") == 1
    code, out, _ = cli("sample", "--checkpoint", tiny_run, "--num", 1, "--max-length", 30, "--primer", "X:1\\nK:D\\n",
                       "--constrain", "none", capsys=capsys)
    assert code == 0 and out.startswith("X:1\nK:D\n")
