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


def music_view(tune: str) -> dict:
    """The parts of music_features after the discriminator's feature view, by name."""
    from rlmusic.abc import scan
    from rlmusic.preference import music_features
    from rlmusic.realness import feature_vector

    row = music_features([tune])[0]
    skip = len(feature_vector(scan(tune), tune))
    return {"degrees": row[skip:skip + 12].tolist(), "last": int(np.argmax(row[skip + 12:skip + 24])),
            "same": row[skip + 24], "moved": row[skip + 25]}


def degrees(**shares) -> list[float]:
    out = [0.0] * 12
    for name, share in shares.items():
        out[int(name[1:])] = share
    return out


@pytest.mark.parametrize("body,key,expected", [
    # one repeated strain home on the tonic: its end is the tune's end, counted once
    ("|:GABc dBAG|ABcA G4:|", "G", {"degrees": degrees(d0=1.0), "last": 0}),
    # two strains, the first on the dominant (a half cadence), the second home
    ("|:GABc dBAG|ABcA d4:||:gfed cBAG|ABcA G4:|", "G", {"degrees": degrees(d0=0.5, d7=0.5), "last": 0}),
    # no double bar at the end: the last note (B, the third of G) still ends the tune
    ("GABc dBAG|ABcA B4|", "G", {"degrees": degrees(d4=1.0), "last": 4}),
    # a first ending leads back into its strain: only the second ending's note is a strain end
    ("|:GABc dBAG|1 ABcA d4:|2 ABcA G4|]", "G", {"degrees": degrees(d0=1.0), "last": 0}),
    # in D the same note names end on other degrees: G is the fourth (5 semitones up)
    ("|:DEFG ABAG|FEDE G4:|", "D", {"degrees": degrees(d5=1.0), "last": 5}),
])
def test_music_view_cadences(body, key, expected):
    got = music_view(f"X:1\nT:t\nM:4/4\nL:1/8\nK:{key}\n{body}\n")
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("body,same,moved", [
    # bar 2 repeats bar 1; bar 3 is new (G4 has one note: no figure): 1 of 2 bars after the first
    ("|:GABc|GABc|dcBA|G4:|", 0.5, 0.5),
    # bar 2 is bar 1 a tone higher (the same intervals, 2 and 2 semitones): moved, not the same
    ("|:CDE2|DE^F2|GABc|c4:|", 0.0, 0.5),
    # nothing comes back (CDEF and GABc would: both go up 2, 2, 1 semitones)
    ("|:CDEF|GFED|cBAG|G4:|", 0.0, 0.0),
    # repeats count within their strain only: the B strain's first bar equals the A strain's, no credit
    ("|:CDEF|GFED:||:CDEF|dcBA:|", 0.0, 0.0),
])
def test_music_view_repeats(body, same, moved):
    got = music_view(f"X:1\nT:t\nM:4/4\nL:1/8\nK:C\n{body}\n")
    assert (got["same"], got["moved"]) == (pytest.approx(same), pytest.approx(moved))


def test_the_music_view_learns_a_listener_of_cadences(toy):
    # a listener who prefers the tune that ends on the tonic (C): the score's view says it directly
    rng = random.Random(1)
    tunes = [HEADER + "".join(rng.choice("ABcd") for _ in range(12)) + rng.choice("ABCd") + "2|]" for _ in range(240)]
    choices = []
    for i in range(120):
        a, b = tunes[2 * i], tunes[2 * i + 1]
        ea, eb = a.endswith("C2|]"), b.endswith("C2|]")
        choices.append({"pair": i, "a": a, "b": b, "choice": "a" if ea > eb else "b" if eb > ea else "none"})
    model = train(choices, toy, heldout=0.25, features="music", log=lambda m: None)
    assert model.features == "music" and model.heldout_pairs >= 10 and model.heldout_accuracy >= 0.9


def test_feature_views_are_checked_and_old_files_read_as_network(toy, tmp_path):
    from rlmusic.preference import tune_features

    with pytest.raises(UserError, match="features 'sound'"):
        tune_features(None, None, [HEADER + "A|"], "sound")
    model = train(toy_choices(20), toy, heldout=0, features="network", log=lambda m: None)
    path = model.save(tmp_path / "rm")
    data = json.loads(path.read_text())
    del data["features"]  # a file written before there was a choice of view
    path.write_text(json.dumps(data))
    assert PreferenceModel.load(tmp_path / "rm").features == "network"
    path.write_text(json.dumps({**data, "features": "sound"}))
    with pytest.raises(UserError, match="features 'sound'"):
        PreferenceModel.load(tmp_path / "rm")
