"""The model shipped in the package (rlmusic/pretrained/folk): it loads, samples, and its card tells the truth."""

import json

from conftest import cli
from rlmusic.rundir import RunDir, load_model, shipped_model


def test_the_shipped_model_loads_and_samples_real_headers():
    from rlmusic.sample import Sampler

    model, vocab, cfg = load_model(shipped_model())
    tunes = Sampler(model, vocab).generate(4, max_length=400, seed=0)
    assert all(t.text.startswith("X:1\n") for t in tunes)
    assert sum("K:" in t.text for t in tunes) >= 3  # a trained model writes headers, not noise
    assert cfg["model"]["layers"] >= 1


def test_its_vocabulary_is_the_corpus_vocabulary():
    from rlmusic.data import DataConfig, prepare
    from rlmusic.envs import default_vocab

    shipped = RunDir(shipped_model()).read_vocab()
    assert shipped == prepare(DataConfig(), log=lambda m: None).vocab == default_vocab()


def test_the_model_card_figures_are_those_of_its_metrics():
    run = RunDir(shipped_model())
    card = json.loads((run.path / "card.json").read_text())
    rows = run.read_metrics()
    evals = [r for r in rows if "val_bits_per_char" in r]
    assert card["steps"] == run.latest_step() == max(r["step"] for r in rows)
    assert card["val_bits_per_char"] == evals[-1]["val_bits_per_char"] and card["val_step"] == evals[-1]["step"]
    text = (run.path / "MODEL_CARD.md").read_text()
    assert f"{card['val_bits_per_char']:.3f} bits/char" in text and f"{card['valid_share_t1']:.1%}" in text
    assert f"{card['steps']:,} steps" in text
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    assert size < 30e6


def test_sample_uses_it_when_no_checkpoint_is_given(capsys):
    code, out, err = cli("sample", "--num", 2, "--max-length", 120, capsys=capsys)
    assert code == 0 and "using the shipped model rlmusic/pretrained/folk" in err
    assert out.count("X:1\n") == 2
