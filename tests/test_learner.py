"""Learning on a toy model: KL shaping, PPO and REINFORCE raising a rewarded character, whole tunes per row,
the supervised (ptx) term, KL-control to the prior and its nucleus, dense credit, the update by length buckets."""

import json

import numpy as np
import pytest

from conftest import make_toy_run
from rlmusic._tf import tf
from rlmusic.finetune import FinetuneConfig, run_finetune
from rlmusic.learner import make_agent
from rlmusic.policy import kl_shaped_rewards
from rlmusic.rewards.mix import RewardMix
from rlmusic.rollouts import Rollouts, tune_steps


def test_kl_shaping_on_known_log_probabilities():
    task = tf.constant([[0.0, 0.0, 2.0]])
    logp_pi = tf.math.log(tf.constant([[0.5, 0.25, 0.9]]))
    logp_prior = tf.math.log(tf.constant([[0.5, 0.5, 0.3]]))
    shaped = kl_shaped_rewards(task, logp_pi, logp_prior, beta=0.5).numpy()
    # equal probabilities: no penalty; policy less sure than the prior: a bonus; far more sure: a penalty
    np.testing.assert_allclose(shaped, [[0.0, -0.5 * np.log(0.5), 2.0 - 0.5 * np.log(3.0)]], rtol=1e-6)


@pytest.mark.parametrize("agent,iterations,lr", [("ppo", 12, 3e-3), ("reinforce", 25, 1e-2)])
def test_rl_raises_the_rewarded_character(tmp_path, agent, iterations, lr):
    pre = make_toy_run(tmp_path / "pre")
    # unmasked: 16 characters are about the shortest valid tune, which would leave the policy no choice
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", beta=0.0, ptx_coef=0.0, agent=agent,
                         iterations=iterations, constrain="none",
                         tunes_per_iteration=16, max_length=16, learning_rate=lr, num_epochs=4,
                         checkpoint_every=100)
    out = run_finetune(cfg, pre, tmp_path / "ft", log=lambda m: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = np.mean([r["rewards/toy_rewards:share_of_a"] for r in rows[:3]])
    last = np.mean([r["rewards/toy_rewards:share_of_a"] for r in rows[-3:]])
    assert last > first + 0.2, (first, last)  # from ~1/11 by chance to well above


def test_each_row_of_a_collection_is_one_whole_tune(tmp_path):
    """Every environment writes exactly one tune per collection, from its FIRST step, then padding that the
    losses mask out. (Stopping at the first N ended episodes would keep the short tunes and cut the long ones,
    and a tune continued in the next collection would be stepped from an unprimed state.)"""
    from rlmusic.rundir import load_model

    model, vocab, _ = load_model(make_toy_run(tmp_path / "pre"))
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", tunes_per_iteration=6, max_length=30,
                         primer="X:1\n")
    rollouts = Rollouts(cfg, vocab, model, RewardMix(cfg.rewards, gates=cfg.gate))
    agent, _, _ = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    for _ in range(3):
        exp, finished = rollouts.collect()
        step_type, next_type = exp.step_type.numpy(), exp.next_step_type.numpy()
        assert (step_type[:, 0] == 0).all()  # every row begins with a FIRST step
        assert ((next_type == 2).sum(axis=1) == 1).all()  # ... and holds exactly one tune's end
        assert (step_type[:, -1] == 2).all()  # the last column is padding (PPO only bootstraps from it)
        boundary = exp.is_boundary().numpy()
        for row in range(len(step_type)):
            end = int(np.argmax(next_type[row] == 2))
            assert not boundary[row, :end + 1].any() and boundary[row, end + 1:].all()
            assert (exp.reward.numpy()[row, end + 1:] == 0).all()
            # the tune reported for the row is the one written in it
            chars = "".join(vocab.chars[a] for a in exp.action.numpy()[row, :end + 1])
            assert finished[row]["tune"] == ("X:1\n" + chars).rstrip("\n")
        assert len(finished) == cfg.tunes_per_iteration


def toy_learner(tmp_path, **fields):
    """(config, rollouts, a function making a Learner over them) for the toy model, built as finetune builds them:
    the policy, a second load as the prior, the agent with its optimizer. A Learner reads the config when made."""
    from rlmusic.learner import Learner
    from rlmusic.rundir import load_model

    model, vocab, _ = load_model(make_toy_run(tmp_path / "pre"))
    prior, _, _ = load_model(tmp_path / "pre")
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", primer="X:1\n", ptx_coef=0.0, **fields)
    rollouts = Rollouts(cfg, vocab, model, RewardMix(cfg.rewards, gates=cfg.gate))
    agent, value_net, optimizer = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    return cfg, rollouts, lambda: Learner(cfg, agent, optimizer, (rollouts.actor, value_net), model, prior,
                                          rollouts.primer_ids)


def test_updates_on_tunes_of_other_lengths_are_compiled_once(tmp_path):
    """Every collection has other lengths (rows and columns per bucket): the KL passes, the advantages and the
    PPO epoch are each traced once for all of them, and Adam's slots exist before the first compiled step (a
    tf.function that creates variables traces twice). Each trace costs seconds; per new shape, every run."""
    cfg, rollouts, make_learner = toy_learner(tmp_path, tunes_per_iteration=5, max_length=300, update_buckets=2,
                                              num_epochs=2)
    learner = make_learner()
    assert len(learner.optimizer.variables) > 1  # Adam's moments are built with the agent
    shapes = set()
    for _ in range(3):
        exp, finished = rollouts.collect()
        shapes |= {tuple(part.step_type.shape) for part, _ in learner.split(exp, finished)}
        assert np.isfinite(learner.update(exp, finished, beta=0.1)["loss"])
    assert len(shapes) > 2  # buckets of other rows x columns (5 rows into 2 buckets: 3 and 2), or it shows nothing
    for fn in (learner.policy_logp, learner.prior_logp, learner._prepare, learner._epoch):
        assert fn.compiled.experimental_get_tracing_count() == 1


def test_ptx_loss_pulls_the_policy_toward_real_tunes(tmp_path):
    """With no task reward and no KL, only the supervised term moves the weights: the NLL of the real tunes
    (logged each iteration, measured before that iteration's step) falls."""
    pre = make_toy_run(tmp_path / "pre")
    data = tmp_path / "real.abc"
    data.write_text("".join(f"X:{i}\nK:C\nABcd|dcBA|ABcd|dcBA|\n\n" for i in range(1, 40)))
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 0.0}, gate="", beta=0.0, iterations=12,
                         tunes_per_iteration=4, max_length=12, learning_rate=1e-2, checkpoint_every=100,
                         constrain="none", ptx_coef=1.0, ptx_data=[str(data)], ptx_batch=8)
    out = run_finetune(cfg, pre, tmp_path / "ft", log=lambda m: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    nll = [r["ptx_nll_bits_per_char"] for r in rows]
    assert nll[0] > 3.0  # untrained over 11 characters: about log2(11) = 3.46 bits
    assert nll[-1] < nll[0] - 1.0, nll


def test_kl_penalty_holds_the_policy_near_the_prior(tmp_path):
    """Same task reward, a large beta: the policy moves much less from the prior than with beta 0."""
    pre = make_toy_run(tmp_path / "pre")
    kls = {}
    for beta in (0.0, 1.0):
        cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", beta=beta, kl_target=0.0,
                             ptx_coef=0.0, iterations=10, constrain="none",
                             tunes_per_iteration=16, max_length=16, learning_rate=3e-3, checkpoint_every=100)
        out = run_finetune(cfg, pre, tmp_path / f"ft{beta}", log=lambda m: None)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        kls[beta] = np.mean([r["kl"] for r in rows[-3:]])
    assert kls[1.0] < kls[0.0]


def test_kl_control_to_the_priors_nucleus_leaves_the_tail_out(tmp_path):
    """No task reward, only the KL penalty against the prior's nucleus (prior_top_p): at first the policy is the
    prior, whose tail characters cost -ln(prior_tail) each, so the KL to the nucleus is large; the update moves
    the policy into the nucleus and it falls. Against the prior itself (prior_top_p 1) it starts at 0. (discount
    0: each character is credited with its own penalty only, so 10 small iterations show it.)"""
    pre = make_toy_run(tmp_path / "pre")
    kls = {}
    for top_p in (1.0, 0.5):
        cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 0.0}, gate="", beta=1.0, kl_target=0.0,
                             ptx_coef=0.0, prior_top_p=top_p, prior_tail=0.01, iterations=10, discount=0.0,
                             constrain="none",
                             tunes_per_iteration=16, max_length=16, learning_rate=1e-2, checkpoint_every=100)
        out = run_finetune(cfg, pre, tmp_path / f"ft{top_p}", log=lambda m: None)
        kls[top_p] = [json.loads(line)["kl"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert abs(kls[1.0][0]) < 1e-4  # the policy that collected the first tunes is the prior
    assert kls[0.5][0] > 1.0  # about half the characters are the prior's tail: ~0.5 x ln(100) = 2.3
    assert np.mean(kls[0.5][-3:]) < 0.65 * kls[0.5][0], kls[0.5]  # measured: 1.74 -> 0.87


def test_dense_credit_goes_to_the_step_that_wrote_the_character():
    from rlmusic.learner import dense_rewards

    primer = 4  # "X:1\n"
    next_type = np.array([[1, 1, 1, 2, 0, 0], [1, 2, 0, 0, 0, 0]])  # row 0 ends at step 3, row 1 at step 1
    finished = [{"dense": [(primer + 2, -1.0), (primer + 2, -0.5), (0, -0.25)]},  # two at step 2; one in the primer
                {"dense": [(primer + 40, -1.0)]}]  # past the end: the last step
    out = dense_rewards(finished, next_type, primer)
    np.testing.assert_allclose(out, [[-0.25, 0, -1.5, 0, 0, 0], [0, -1.0, 0, 0, 0, 0]])


def test_the_update_by_length_buckets_is_the_whole_batch_update(tmp_path):
    """Rows sorted by length and cut into buckets cost less to run, but the loss and its gradient must be those
    of the whole batch padded to its longest tune (each bucket weighed by its share of rows x columns)."""
    # unmasked: under the mask an untrained model's tunes run to the length limit alike, and buckets cut little
    cfg, rollouts, make_learner = toy_learner(tmp_path, tunes_per_iteration=7, max_length=300, constrain="none")
    exp, finished = rollouts.collect()
    lengths = [len(info["tune"]) for info in finished]
    assert len(set(lengths)) > 2  # unequal tunes, or the test shows nothing

    def loss_and_grads(buckets):
        cfg.update_buckets = buckets
        learner = make_learner()
        parts = [learner.shape(part, infos, 0.1)[0] for part, infos in learner.split(exp, finished)]
        assert len(parts) == buckets
        with tf.GradientTape() as tape:
            loss = learner.ppo_loss(*learner.prepare(parts))
        grads = tape.gradient(loss, learner.variables)
        return float(loss), [tf.convert_to_tensor(g).numpy() for g in grads], sum(p.step_type.shape[1] for p in parts)

    whole, whole_grads, _ = loss_and_grads(1)
    for buckets in (3, 7):  # 7: one tune per bucket
        loss, grads, columns = loss_and_grads(buckets)
        assert loss == pytest.approx(whole, rel=1e-4, abs=1e-6)
        for g, w in zip(grads, whole_grads):
            np.testing.assert_allclose(g, w, rtol=2e-3, atol=1e-6)
        assert columns < buckets * (max(lengths) - 4 + 2)  # the short buckets are cut shorter


@pytest.mark.parametrize("rows, expected", [
    # the KL charge grows with length (-0.01 per character), the task return is flat: shorter tunes pay, by KL
    ([[100, 1.0, -1.0], [200, 1.0, -2.0], [300, 1.0, -3.0]], {"per_100_chars/task": 0.0, "per_100_chars/kl": -1.0}),
    # the task return grows 0.5 per 100 characters (a reward that pays for more bars), no KL charge
    ([[100, 0.5, 0.0], [300, 1.5, 0.0]], {"per_100_chars/task": 0.5, "per_100_chars/kl": 0.0}),
    # every tune of one length: nothing to compare, nothing logged
    ([[120, 0.3, -0.1], [120, 0.9, -0.2]], {}),
    # one tune: nothing to compare
    ([[120, 0.3, -0.1]], {}),
])
def test_length_slopes_say_which_part_of_the_return_pays_for_length(rows, expected):
    from rlmusic.neutral import length_slopes

    got = length_slopes(np.array(rows, float))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9)


def test_each_tune_s_characters_and_kl_charge_come_out_of_the_shaping(tmp_path):
    """The rows length_slopes reads: per tune its steps, and KL charges that add up to -beta x the batch's KL."""
    cfg, rollouts, make_learner = toy_learner(tmp_path, tunes_per_iteration=5, max_length=200, constrain="none")
    exp, finished = rollouts.collect()
    learner = make_learner()
    for w in rollouts.actor.model.trainable_variables:  # the policy moved off the prior: a KL to charge
        w.assign_add(tf.random.stateless_normal(w.shape, [1, 2], stddev=0.05))
    out = [learner.shape(part, infos, 0.1) for part, infos in learner.split(exp, finished)]
    rows = np.concatenate([r for _, _, r in out])
    kl_sum = sum(k for _, (k, _, _), _ in out)
    assert kl_sum != 0.0
    assert rows[:, 2].sum() == pytest.approx(-0.1 * kl_sum, rel=1e-4)
    assert sorted(rows[:, 0]) == sorted(float(n) for n in tune_steps(exp.next_step_type.numpy()))


@pytest.mark.parametrize("neutral_return", ["task", "shaped"])
def test_a_shaped_neutral_return_leaves_length_nothing_to_earn(tmp_path, neutral_return):
    """neutral_return "shaped": each tune's task return plus its KL charge plus its offset has no trend over the
    tunes' characters (the KL charge grows with length where the policy has left the prior); "task" leaves the
    KL charge out of the re-centring."""
    cfg, rollouts, make_learner = toy_learner(tmp_path, tunes_per_iteration=8, max_length=200, constrain="none",
                                              neutral_headers="length", neutral_return=neutral_return)
    exp, finished = rollouts.collect()
    learner = make_learner()
    for w in rollouts.actor.model.trainable_variables:  # the policy moved off the prior: a KL to charge
        w.assign_add(tf.random.stateless_normal(w.shape, [3, 4], stddev=0.05))
    split = learner.split(exp, finished)
    learner.neutralize(exp, finished, split, [learner.score(part) for part, _ in split], 0.1)
    chars = np.array([len(info["tune"]) for info in finished], float)
    assert np.ptp(chars) > 0  # tunes of other lengths, or the test shows nothing
    task = exp.reward.numpy().sum(axis=1) + np.array([info["neutral_offset"] for info in finished])
    if neutral_return == "task":
        assert all("kl_charge" not in info for info in finished)
        return
    charge = np.array([info["kl_charge"] for info in finished])
    assert np.any(charge != 0)
    assert np.polyfit(chars, task + charge, 1)[0] == pytest.approx(0.0, abs=1e-7)
