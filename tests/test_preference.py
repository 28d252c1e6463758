"""The reward learned from preferences (rlmusic/preference.py, rewards/preference.py, `rlmusic reward-model`)."""

import json
import random

import numpy as np
import pytest

from rlmusic.errors import UserError
from rlmusic.preference import PreferenceModel, accuracy, pair_targets, train

HEADER = "X:1\nT:T\nM:4/4\nK:C\n"  # the toy vocabulary has no lower-case t


def toy_choices(n: int, seed: int = 0) -> list[dict]:
    """A synthetic listener who prefers the tune with more A's (ties: no preference)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = (HEADER + "".join(rng.choice("AABcd") for _ in range(rng.randint(8, 24))) + "|" for _ in range(2))
        choice = "a" if a.count("A") > b.count("A") else "b" if b.count("A") > a.count("A") else "none"
        out.append({"pair": i, "a": a, "b": b, "choice": choice})
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from conftest import make_toy_run

    return make_toy_run(tmp_path_factory.mktemp("toy") / "run")


@pytest.mark.parametrize("choice,target", [
    ("a", 1.0),     # the left tune won
    ("b", 0.0),     # the right tune won
    ("none", 0.5),  # no preference: a target of one half
])
def test_pair_targets(choice, target):
    assert pair_targets([{"a": "x", "b": "y", "choice": choice}])[2][0] == target


def test_accuracy_counts_only_pairs_with_a_winner():
    diff = np.array([[1.0], [-1.0], [1.0], [5.0]])
    target = np.array([1.0, 1.0, 0.0, 0.5])  # right, wrong, wrong, a tie (left out)
    assert accuracy(diff, target, np.array([1.0])) == (pytest.approx(1 / 3), 3)


def test_a_reward_model_learns_the_listener_and_scores_the_same_after_loading(toy, tmp_path):
    model = train(toy_choices(200), toy, heldout=0.25, log=lambda m: None)
    assert model.heldout_pairs > 30 and model.heldout_accuracy >= 0.8  # chance is 0.5
    path = model.save(tmp_path / "rm")
    assert json.loads(path.read_text())["pairs"] == 200  # plain JSON
    fresh = [HEADER + "AAAAcAAd|", HEADER + "BBcdBcdB|"]
    loaded = PreferenceModel.load(tmp_path / "rm")
    assert loaded.score(fresh) == pytest.approx(model.score(fresh))
    assert loaded.score(fresh)[0] > loaded.score(fresh)[1]  # more A's: preferred


@pytest.mark.parametrize("content,match", [
    ("not json", "not a reward model"),                                    # not JSON
    ('{"checkpoint": "x"}', "not a reward model"),                          # fields missing
    ('{"checkpoint": "x", "vocab_sha256": "", "mean": [0], "std": [1, 2], "w": [1]}', "differ in length"),
])
def test_a_bad_reward_model_file_is_an_error_naming_it(tmp_path, content, match):
    (tmp_path / "reward_model.json").write_text(content)
    with pytest.raises(UserError, match=match):
        PreferenceModel.load(tmp_path)


def test_features_from_another_vocabulary_are_refused(toy, tmp_path):
    model = train(toy_choices(20), toy, heldout=0, log=lambda m: None)
    model.vocab_sha256 = "0" * 64
    with pytest.raises(UserError, match="not the vocabulary"):
        model.score([HEADER + "A|"])


def test_the_preference_reward_needs_its_model():
    from rlmusic.finetune import FinetuneConfig

    with pytest.raises(UserError, match="preference_model"):
        FinetuneConfig(rewards={"preference": 1.0})


def test_reward_model_command(toy, tmp_path, capsys):
    from conftest import cli

    prefs = tmp_path / "preferences.jsonl"
    prefs.write_text("".join(json.dumps(c) + "\n" for c in toy_choices(40)))
    code, _, err = cli("reward-model", "--preferences", prefs, "--checkpoint", toy, "--out", tmp_path / "rm",
                       capsys=capsys)
    assert code == 0 and "held-out accuracy" in err
    from rlmusic.rewards import score
    from rlmusic.rewards.preference import PREFERENCE

    PREFERENCE.use(str(tmp_path / "rm"))
    assert len(score("preference", [HEADER + "AB|", HEADER + "cd|"])) == 2
    code, _, err = cli("reward-model", "--preferences", tmp_path / "none.jsonl", "--checkpoint", toy, "--out",
                       tmp_path / "rm2", capsys=capsys)
    assert code == 2 and "error: --preferences" in err and "no such file" in err
