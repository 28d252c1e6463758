"""Fine-tuning under the grammar's mask, on a toy model: the policy draws only allowed characters, the update's
log-probabilities are the masked ones, every episode can end."""

import numpy as np
import pytest

from conftest import make_toy_run
from rlmusic._tf import tf
from rlmusic.errors import UserError
from rlmusic.finetune import FinetuneConfig
from rlmusic.grammar import AbcGrammar
from rlmusic.learner import Learner, make_agent
from rlmusic.rewards.mix import RewardMix
from rlmusic.rollouts import Rollouts


def masked_rollouts(tmp_path, **fields):
    from rlmusic.rundir import load_model

    model, vocab, _ = load_model(make_toy_run(tmp_path / "pre"))
    prior, _, _ = load_model(tmp_path / "pre")
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", primer="X:1\n", ptx_coef=0.0,
                         constrain="syntax", **fields)
    rollouts = Rollouts(cfg, vocab, model, RewardMix(cfg.rewards, gates=cfg.gate))
    agent, value_net, optimizer = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    learner = Learner(cfg, agent, optimizer, (rollouts.actor, value_net), model, prior, rollouts.primer_ids)
    return model, vocab, rollouts, learner


def test_a_masked_policy_writes_only_allowed_characters_and_ends_every_tune(tmp_path):
    model, vocab, rollouts, _ = masked_rollouts(tmp_path, tunes_per_iteration=6, max_length=40)
    grammar = AbcGrammar()
    for _ in range(2):
        exp, finished = rollouts.collect()
        masks, actions = exp.observation["mask"].numpy(), exp.action.numpy()
        next_type, discount = exp.next_step_type.numpy(), exp.discount.numpy()
        for row in range(len(actions)):
            end = int(np.argmax(next_type[row] == 2))
            assert all(masks[row, t, actions[row, t]] for t in range(end + 1))  # drawn under its mask
            assert discount[row, end] == 0.0  # terminated (the tune ended), not truncated by the length limit
            assert grammar.accepts(finished[row]["tune"]), finished[row]["tune"]
            assert not masks[row, :end + 1].all()  # the masks did forbid something


def test_the_update_scores_actions_under_the_mask(tmp_path):
    """The log-probabilities the update uses (the actor network's distribution, which PPO's ratio and entropy
    read, and the KL passes) are the model's renormalised over the allowed characters: the reference here is the
    model's raw logits with the forbidden ones removed by hand. Dropping the mask anywhere on that path fails."""
    from rlmusic.policy import primed_state

    model, vocab, rollouts, learner = masked_rollouts(tmp_path, tunes_per_iteration=4, max_length=40)
    exp, finished = rollouts.collect()
    obs, actions, step_type = exp.observation, exp.action, exp.step_type
    live = ~exp.is_boundary().numpy()
    # the reference: raw logits over whole rows (one tune per row from its first column), masked by hand
    primed = primed_state(model, tf.constant(rollouts.primer_ids))
    state = tf.nest.map_structure(lambda p: tf.repeat(p, len(actions), axis=0), primed)
    raw, _ = model(obs["char"], state)
    raw_logp = tf.nn.log_softmax(raw).numpy()
    masked_logp = tf.nn.log_softmax(tf.where(obs["mask"], raw, -np.inf)).numpy()
    pick = lambda lp: np.take_along_axis(lp, actions.numpy()[..., None], -1)[..., 0]  # noqa: E731
    expected, unmasked = pick(masked_logp)[live], pick(raw_logp)[live]
    assert np.abs(expected - unmasked).max() > 1e-3  # the mask matters for these tunes, or the test shows nothing
    # the KL passes
    logp, _ = learner.policy_logp(obs, actions, step_type)
    np.testing.assert_allclose(logp.numpy()[live], expected, atol=1e-4)
    # the actor network, as PPO's loss calls it
    dist, _ = rollouts.actor(obs, step_type=step_type, network_state=rollouts.actor.get_initial_state(len(actions)))
    np.testing.assert_allclose(dist.log_prob(actions).numpy()[live], expected, atol=1e-4)
    # and the behaviour policy's own record of what it drew from
    recorded = tf.nn.log_softmax(exp.policy_info["dist_params"]["logits"]).numpy()
    np.testing.assert_allclose(pick(recorded)[live], expected, atol=1e-4)
    assert np.isfinite(learner.update(exp, finished, beta=0.1)["loss"])


def test_every_episode_can_end(tmp_path):
    from rlmusic.envs.composition import AbcCompositionEnv, default_vocab

    rng = np.random.default_rng(0)
    for max_length in (30, 80):
        env = AbcCompositionEnv(vocab=default_vocab(), rewards={"valid": 1.0}, max_length=max_length,
                                constrain="syntax")
        for _ in range(5):
            _, info = env.reset()
            for _ in range(max_length):
                action = rng.choice(np.flatnonzero(info["action_mask"]))
                _, reward, terminated, truncated, info = env.step(action)
                if terminated or truncated:
                    break
            assert terminated and not truncated and reward == 1.0  # ended in time, and valid
    with pytest.raises(UserError, match="max_length 8: too short"):
        AbcCompositionEnv(max_length=8, constrain="syntax")


def test_the_registered_env_offers_masks_and_a_forbidden_action_leaves_the_grammar():
    import gymnasium as gym

    from rlmusic.envs import ENV_ID, ENV_ID_V0

    env = gym.make(ENV_ID, rewards={"valid": 1.0}, max_length=60)
    _, info = env.reset()
    mask = info["action_mask"]
    assert mask.dtype == np.int8 and 0 < mask.sum() < len(mask)
    assert (env.unwrapped.action_masks() == mask.astype(bool)).all()
    forbidden = int(np.flatnonzero(mask == 0)[0])
    _, _, _, _, info = env.step(forbidden)  # taken, as Gymnasium's masks only advise ...
    assert info["action_mask"].all()  # ... but off the grammar: no mask any more, and the tune is invalid
    assert "action_mask" not in gym.make(ENV_ID_V0).reset()[1]
