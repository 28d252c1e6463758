"""The Gymnasium composition environment and its tf-agents adapter."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlmusic.envs  # noqa: F401 - registers the environment
from rlmusic.envs import ENV_ID, ENV_ID_V0, AbcCompositionEnv, default_vocab
from rlmusic.errors import UserError
from rlmusic.rewards.mix import RewardMix

TUNE = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\nDFA dAF|DFA d2A|FED E2F|D4 z4|\n\n"
BODY = TUNE[len("X:1\n"):]  # what the agent writes after the default primer


def write(env, text):
    results = [env.step(env.unwrapped.vocab.index[c]) for c in text]
    return results


def test_check_env_on_the_registered_id():
    env = gym.make(ENV_ID)
    check_env(env.unwrapped)
    assert env.unwrapped.vocab == default_vocab()


def test_default_vocab_is_the_embedded_corpus_vocab():
    from rlmusic.data import DataConfig, prepare

    assert default_vocab() == prepare(DataConfig(), log=lambda m: None).vocab


def test_a_finished_tune_terminates_with_its_score():
    env = gym.make(ENV_ID, rewards={"in_key": 2.0, "tonic_start_end": 1.0, "valid": 1.0})
    obs, _ = env.reset(seed=0)
    assert obs == env.unwrapped.vocab.index["\n"]  # the primer's last character
    results = write(env, BODY)
    assert all(r[1] == 0.0 and not r[2] and not r[3] for r in results[:-1])  # nothing before the end
    _, reward, terminated, truncated, info = results[-1]
    assert terminated and not truncated
    assert info["tune"] == TUNE.rstrip("\n")
    assert info["rewards"] == {"in_key": 1.0, "tonic_start_end": 1.0, "valid": 1.0}
    assert reward == pytest.approx(2.0 * 1.0 + 1.0 * 1.0 + 1.0)


def test_length_limit_is_a_truncation():
    env = gym.make(ENV_ID_V0, rewards={"headers": 1.0}, max_length=8, gate=None)
    env.reset()
    results = write(env, BODY[:8])  # "T:t\nM:4/": the primer does not count towards max_length
    _, reward, terminated, truncated, info = results[-1]
    assert truncated and not terminated and len(results) == 8
    assert info["tune"] == TUNE[:12] and reward == pytest.approx(0.75)  # X, T, a cut M:, no K


def test_the_env_scores_with_its_mix_and_shares_one():
    mix = RewardMix({"in_key": 1.0, "valid": 0.5}, gates="valid")
    a, b = AbcCompositionEnv(rewards=mix), AbcCompositionEnv(rewards=mix)
    assert a.mix is b.mix is mix  # resolved once, shared
    a.reset()
    *_, (_, reward, terminated, _, info) = write(a, BODY)
    assert terminated and reward == pytest.approx(mix.total(info["rewards"])) == pytest.approx(1.5)


def test_vector_env():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, max_length=50) for _ in range(3)])
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (3,)
    vocab = default_vocab()
    obs, rewards, term, trunc, _ = envs.step(np.array([vocab.index[c] for c in "ABC"]))
    assert rewards.shape == (3,) and not term.any() and not trunc.any()


def test_a_header_primer_starts_every_tune():
    env = AbcCompositionEnv(rewards={"headers": 1.0}, primer="X:1\nT:Jig\nM:6/8\nL:1/8\nK:D\n")
    env.reset()
    *_, info = [env.step(env.vocab.index[c]) for c in "ABA d3|\n\n"][-1]
    assert info["tune"] == "X:1\nT:Jig\nM:6/8\nL:1/8\nK:D\nABA d3|" and info["rewards"]["headers"] == 1.0


def test_bad_arguments():
    with pytest.raises(UserError, match="unknown reward 'nope'"):
        AbcCompositionEnv(rewards={"nope": 1.0})
    with pytest.raises(UserError, match="primer: must end with a newline"):
        AbcCompositionEnv(primer="X:1")
    with pytest.raises(UserError, match="needs"):
        AbcCompositionEnv(vocab=list("abc"))


def test_tf_agents_adapter_maps_terminated_and_truncated():
    from rlmusic.envs.tfa_adapter import GymnasiumPyEnvironment

    finished = GymnasiumPyEnvironment(AbcCompositionEnv(rewards={"valid": 1.0}))
    vocab = finished.env.vocab
    step = finished.reset()
    assert step.is_first()
    for c in BODY:
        step = finished.step(np.int32(vocab.index[c]))
    assert step.is_last() and step.discount == 0.0 and step.reward == 1.0  # termination: no future value
    assert finished.step(np.int32(0)).is_first()  # the next step starts a new tune

    cut = GymnasiumPyEnvironment(AbcCompositionEnv(rewards={"valid": 1.0}, max_length=5), discount=0.99)
    cut.reset()
    for c in BODY[:5]:
        step = cut.step(np.int32(vocab.index[c]))
    assert step.is_last() and step.discount == np.float32(0.99)  # truncation keeps the discount


def test_one_episode_adapter_idles_until_drained():
    """Once its tune has ended, a one-episode environment is not stepped (nothing written or scored) until the
    finished tune is drained; then it writes a new one."""
    from rlmusic.envs.tfa_adapter import GymnasiumPyEnvironment

    env = GymnasiumPyEnvironment(AbcCompositionEnv(rewards={"valid": 1.0}, render_mode="ansi"), one_episode=True)
    vocab = env.env.vocab
    env.reset()
    for c in BODY:
        step = env.step(np.int32(vocab.index[c]))
    assert step.is_last() and len(env.finished) == 1
    env.step(np.int32(0))  # auto-reset: FIRST
    for _ in range(5):
        step = env.step(np.int32(vocab.index["A"]))
        assert step.reward == 0.0 and not step.is_last()
    assert env.env.render() == env.env.primer  # the env was reset, then not stepped
    assert len(env.finished) == 1
    env.finished.clear()  # drained
    env.step(np.int32(vocab.index["A"]))
    assert env.env.render()[-1] == "A"  # stepping again


def test_batched_adapter():
    from rlmusic.envs.tfa_adapter import batched

    env = batched(lambda: AbcCompositionEnv(max_length=20), 4)
    step = env.reset()
    assert step.observation.shape == (4,) and env.batch_size == 4
    step = env.step(np.zeros(4, np.int32))
    assert step.reward.shape == (4,)


def test_dense_credit_is_in_the_info_at_the_end_of_the_tune():
    env = AbcCompositionEnv(rewards={"valid": 1.0, "in_key": 1.0}, dense=True, gate=None)
    env.reset()
    *_, (_, reward, terminated, _, info) = write(env, "T:t\nM:4/4\nL:1/8\nK:C\nAB^cd]|\n\n")
    tune = info["tune"]
    offsets = sorted(at for at, _ in info["dense"])
    assert tune[offsets[0] - 1] == "c" and tune[offsets[1]] == "]"  # the note out of key ends, the stray ]
    assert sorted(c for _, c in info["dense"]) == [-1.0, -1.0]
    assert "dense" not in AbcCompositionEnv(rewards={"valid": 1.0}).reset()[1]
