"""Fine-tuning: KL shaping, real learning with PPO and REINFORCE, the CLI, resume and bad inputs."""

import json

import numpy as np
import pytest

from conftest import cli
from rlmusic._tf import tf
from rlmusic.finetune import FinetuneConfig, adapt_beta, adapt_weight, pi_weight, run_finetune
from rlmusic.learner import make_agent
from rlmusic.rollouts import Rollouts
from rlmusic.model import ModelConfig, build_model
from rlmusic.policy import kl_shaped_rewards
from rlmusic.rewards.mix import RewardMix
from rlmusic.rundir import RunDir
from rlmusic.vocab import Vocab

TOY_VOCAB = Vocab(list("\nX:1KCABcd|"))


def test_kl_shaping_on_known_log_probabilities():
    task = tf.constant([[0.0, 0.0, 2.0]])
    logp_pi = tf.math.log(tf.constant([[0.5, 0.25, 0.9]]))
    logp_prior = tf.math.log(tf.constant([[0.5, 0.5, 0.3]]))
    shaped = kl_shaped_rewards(task, logp_pi, logp_prior, beta=0.5).numpy()
    # equal probabilities: no penalty; policy less sure than the prior: a bonus; far more sure: a penalty
    np.testing.assert_allclose(shaped, [[0.0, -0.5 * np.log(0.5), 2.0 - 0.5 * np.log(3.0)]], rtol=1e-6)


@pytest.mark.parametrize("beta,kl,target,floor,ceiling,expected", [
    (0.1, 0.1, 0.1, 0.0, 0.0, 0.1),      # on target: unchanged
    (0.1, 0.2, 0.1, 0.0, 0.0, 0.11),     # KL far above target: +10 % at most (error clipped at 0.2, rate 0.5)
    (0.1, 0.0, 0.1, 0.0, 0.0, 0.09),     # KL far below target: -10 % at most
    (0.1, 0.105, 0.1, 0.0, 0.0, 0.1025), # 5 % above: +2.5 %
    (0.1, 0.0, 0.1, 0.095, 0.0, 0.095),  # far below target, the floor stops the fall
    (0.1, 0.0, 0.1, 0.05, 0.0, 0.09),    # a floor under the new value does nothing
    (0.01, 0.2, 0.1, 0.05, 0.0, 0.05),   # started under the floor: lifted to it at once
    (0.1, 0.2, 0.1, 0.0, 0.105, 0.105),  # far above target, the ceiling stops the rise
    (0.1, 0.2, 0.1, 0.0, 0.5, 0.11),     # a ceiling over the new value does nothing
    (0.1, 0.0, 0.1, 0.0, 0.1, 0.09),     # at the ceiling, below target: falls as without one
    (27.6, 0.2, 0.1, 0.05, 0.0, 30.36),  # no ceiling (0): the rise has no end
])
def test_adaptive_kl_coefficient(beta, kl, target, floor, ceiling, expected):
    assert adapt_beta(beta, kl, target, floor, ceiling) == pytest.approx(expected)


@pytest.mark.parametrize("fields,ok", [
    ({"beta_max": 0.0}, True),                    # 0: no ceiling
    ({"beta_max": 1.0}, True),                    # above beta (0.1) and beta_min (0.05)
    ({"beta_max": 0.1}, True),                    # equal to beta: allowed
    ({"beta_max": 0.08}, False),                  # below the start value: beta would be cut at once
    ({"beta": 0.01, "beta_max": 0.03}, True),     # under beta_min, but beta started under it is its own floor
    ({"beta": 0.5, "beta_max": 0.3}, False),      # below the start value again
])
def test_beta_max_is_checked_against_the_start_value(fields, ok):
    from rlmusic.config import FieldError

    if ok:
        assert FinetuneConfig(**fields).beta_max == fields["beta_max"]
    else:
        with pytest.raises(FieldError, match="beta_max"):
            FinetuneConfig(**fields)


def make_toy_run(path, seed=0):
    """A 'pretrained' run dir with a tiny untrained model over TOY_VOCAB (all finetune needs)."""
    tf.keras.utils.set_random_seed(seed)
    cfg = ModelConfig(embedding_dim=8, units=32)
    model = build_model(len(TOY_VOCAB), cfg)
    run = RunDir(path)
    run.path.mkdir(parents=True)
    run.write_config(json.dumps({"model": cfg.__dict__}))
    run.write_vocab(TOY_VOCAB)
    run.save_checkpoint(0, model=model)
    return path


@pytest.mark.parametrize("agent,iterations,lr", [("ppo", 12, 3e-3), ("reinforce", 25, 1e-2)])
def test_rl_raises_the_rewarded_character(tmp_path, agent, iterations, lr):
    pre = make_toy_run(tmp_path / "pre")
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", beta=0.0, ptx_coef=0.0, agent=agent,
                         iterations=iterations,
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
    cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", tunes_per_iteration=6, max_length=12,
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
                         ptx_coef=1.0, ptx_data=[str(data)], ptx_batch=8)
    out = run_finetune(cfg, pre, tmp_path / "ft", log=lambda m: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    nll = [r["ptx_nll_bits_per_char"] for r in rows]
    assert nll[0] > 3.0  # untrained over 11 characters: about log2(11) = 3.46 bits
    assert nll[-1] < nll[0] - 1.0, nll


def test_ptx_data_outside_the_vocabulary_is_named(tmp_path, capsys):
    pre = make_toy_run(tmp_path / "pre")
    data = tmp_path / "real.abc"
    data.write_text("X:1\nT:Zed\nK:C\nABcd|\n")
    code, _, err = cli("finetune", "--checkpoint", pre, "--config", "tiny", "--out", tmp_path / "ft",
                       "--set", "rewards={toy_rewards:share_of_a: 1.0}", "--set", "ptx_coef=0.5",
                       "--set", f"ptx_data=[{data}]", capsys=capsys)
    assert code == 2 and "ptx_data" in err and "Traceback" not in err
    assert not (tmp_path / "ft" / "checkpoints").exists()


def test_kl_penalty_holds_the_policy_near_the_prior(tmp_path):
    """Same task reward, a large beta: the policy moves much less from the prior than with beta 0."""
    pre = make_toy_run(tmp_path / "pre")
    kls = {}
    for beta in (0.0, 1.0):
        cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", beta=beta, kl_target=0.0,
                             ptx_coef=0.0, iterations=10,
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
                             tunes_per_iteration=16, max_length=16, learning_rate=1e-2, checkpoint_every=100)
        out = run_finetune(cfg, pre, tmp_path / f"ft{top_p}", log=lambda m: None)
        kls[top_p] = [json.loads(line)["kl"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert abs(kls[1.0][0]) < 1e-4  # the policy that collected the first tunes is the prior
    assert kls[0.5][0] > 1.0  # about half the characters are the prior's tail: ~0.5 x ln(100) = 2.3
    assert np.mean(kls[0.5][-3:]) < 0.65 * kls[0.5][0], kls[0.5]  # measured: 1.74 -> 0.87


def test_the_adapted_beta_stays_between_its_floor_and_its_ceiling(tmp_path):
    """A KL target far above what the run reaches: beta falls 10 % per iteration, down to beta_min, never
    below; started at 0, it stays 0. A KL target far below it (the KL to the prior's nucleus starts at ~2
    nats/char, see above; the case that motivated the ceiling): beta rises 10 % per iteration up to beta_max,
    never above. (Without a floor or a ceiling the fall or rise goes on: the adapt_beta table.)"""
    pre = make_toy_run(tmp_path / "pre")
    runs = {"floor": dict(beta=0.1, kl_target=100.0, beta_min=0.08),
            "zero": dict(beta=0.0, kl_target=100.0, beta_min=0.08),
            "ceiling": dict(beta=0.1, kl_target=0.01, beta_max=0.125, prior_top_p=0.5)}
    betas = {}
    for name, fields in runs.items():
        cfg = FinetuneConfig(rewards={"toy_rewards:share_of_a": 1.0}, gate="", ptx_coef=0.0, iterations=5,
                             tunes_per_iteration=4, max_length=8, checkpoint_every=100, **fields)
        out = run_finetune(cfg, pre, tmp_path / f"ft-{name}", log=lambda m: None)
        betas[name] = [json.loads(line)["beta"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(betas["floor"], [0.1, 0.09, 0.081, 0.08, 0.08], rtol=1e-6)
    assert betas["zero"] == [0.0] * 5  # beta 0 asks for no KL penalty: the floor does not add one
    np.testing.assert_allclose(betas["ceiling"], [0.1, 0.11, 0.121, 0.125, 0.125], rtol=1e-6)


@pytest.mark.parametrize("weight,mean,target,expected", [
    (2.0, 0.2, 0.4, 2.2),     # half the target: the largest step up, +10 %
    (2.0, 0.38, 0.4, 2.05),   # 5 % below: +2.5 %
    (2.0, 0.4, 0.4, 2.0),     # on target: unchanged
    (2.0, 0.9, 0.4, 1.8),     # far above: the largest step down, -10 %
])
def test_a_targeted_reward_weight_follows_its_mean(weight, mean, target, expected):
    assert adapt_weight(weight, mean, target) == pytest.approx(expected)


@pytest.mark.parametrize("mean,integral,kp,ki,expected", [
    (0.36, 0.0, 4.0, 1.0, (2.0, 0.0)),      # on target, nothing summed: the configured weight
    (0.324, 0.0, 4.0, 1.0, (3.0, 0.1)),     # 10 % short: 2 x (1 + 0.4 + 0.1)
    (0.324, 2.0, 4.0, 1.0, (7.0, 2.1)),     # the same after a long shortfall: the integral carries it
    (0.54, 0.0, 4.0, 1.0, (-3.0, -0.5)),    # 50 % over: below 0, form is pushed back
    (0.0, 9.5, 0.0, 1.0, (22.0, 10.0)),     # the integral stops at 10 / ki (anti-windup): 2 x (1 + 10)
    (1.0, -9.8, 0.0, 2.0, (-18.0, -5.0)),   # the error is clipped to -1, the integral to -10 / ki = -5
])
def test_a_pi_controlled_weight_is_a_bounded_multiplier(mean, integral, kp, ki, expected):
    weight, summed = pi_weight(2.0, mean, 0.36, integral, kp, ki)
    assert (weight, summed) == pytest.approx(expected)


@pytest.mark.parametrize("targets,gate,message", [
    ({"form": 0.4}, "valid,form@0.5", "config key reward_targets.form: a gate's weight is not adapted"),
    ({"strains": 0.4}, "valid", "config key reward_targets.strains: needs a positive weight in rewards"),
    ({"form": 1.5}, "valid", "config key reward_targets.form: the target mean must be in (0, 1], got 1.5"),
    ({"form": 0.0}, "valid", "the target mean must be in (0, 1], got 0.0"),
])
def test_reward_targets_are_checked_when_built(targets, gate, message):
    from rlmusic.config import FieldError

    with pytest.raises(FieldError) as err:
        FinetuneConfig(rewards={"valid": 1.0, "form": 2.0}, gate=gate, reward_targets=targets)
    assert message in str(err.value)


def test_a_targeted_weight_is_adapted_logged_and_resumed(tmp_path):
    """share_of_a's mean sits far below a target of 1: its weight rises 10 % per iteration, scores the next
    iteration's tunes with it, and a resumed run continues from the saved weight, not the configured one."""
    pre = make_toy_run(tmp_path / "pre")
    common = dict(rewards={"toy_rewards:share_of_a": 1.0}, gate="", reward_targets={"toy_rewards:share_of_a": 1.0},
                  ptx_coef=0.0, tunes_per_iteration=4, max_length=8, checkpoint_every=2)
    out = run_finetune(FinetuneConfig(iterations=2, **common), pre, tmp_path / "ft", log=lambda m: None)
    out = run_finetune(FinetuneConfig(iterations=4, **common), pre, out, log=lambda m: None)
    rows = RunDir(out).read_metrics()
    weights = [r["weights/toy_rewards:share_of_a"] for r in rows]
    np.testing.assert_allclose(weights, [1.0, 1.1, 1.21, 1.331], rtol=1e-6)
    # the reward logged is the total with the weight of its iteration
    assert rows[2]["reward"] == pytest.approx(1.21 * rows[2]["rewards/toy_rewards:share_of_a"], rel=1e-5)


def test_a_pi_controlled_weight_resumes_with_its_integral(tmp_path):
    """Under target_control pi the integral of the shortfall is saved with the weights: a run resumed after two
    iterations continues the sum, so its weights equal those of an uninterrupted run's formula."""
    pre = make_toy_run(tmp_path / "pre")
    common = dict(rewards={"toy_rewards:share_of_a": 1.0}, gate="", reward_targets={"toy_rewards:share_of_a": 1.0},
                  target_control="pi", target_kp=0.5, target_ki=0.25, ptx_coef=0.0, tunes_per_iteration=4,
                  max_length=8, checkpoint_every=2)
    out = run_finetune(FinetuneConfig(iterations=2, **common), pre, tmp_path / "ft", log=lambda m: None)
    out = run_finetune(FinetuneConfig(iterations=4, **common), pre, out, log=lambda m: None)
    rows = RunDir(out).read_metrics()
    weights = [r["weights/toy_rewards:share_of_a"] for r in rows]
    errors = [1.0 - r["rewards/toy_rewards:share_of_a"] for r in rows]  # target 1: the relative error
    expected = [1.0] + [1.0 + 0.5 * errors[i] + 0.25 * sum(errors[:i + 1]) for i in range(3)]
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights[3] > weights[1]  # the sum kept growing across the resume (a reset would have dropped it)


def test_tiny_finetune_through_the_cli_then_sample(tiny_run, tmp_path, capsys):
    out = tmp_path / "ft"
    code, _, err = cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, capsys=capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"kl", "entropy", "tunes_per_sec", "valid_rate", "rewards/in_key"} <= set(rows[0])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-3"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # reward curves, redrawn per checkpoint
    assert all(r["chars_per_tune"] > len("X:1") for r in rows)
    code, stdout, _ = cli("sample", "--checkpoint", out, "--num", 2, "--max-length", 40, capsys=capsys)
    assert code == 0 and stdout.count("X:1") == 2
    code, _, err = cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out,
                       "--set", "iterations=4", capsys=capsys)
    assert code == 0 and "resuming from iteration 3" in err


@pytest.mark.parametrize("args,message", [
    (["--checkpoint", "{tmp}/none"], "no such run directory"),
    (["--checkpoint", "{run}", "--set", "rewards.nope=1"], "unknown reward 'nope'; valid names: abc2midi"),
    (["--checkpoint", "{run}", "--set", "agent=dqn"], "config key agent: expected one of ppo, reinforce"),
    (["--checkpoint", "{run}", "--set", "rewards.toy_rewards:broken=1"], "reward toy_rewards:broken"),
    (["--checkpoint", "{run}", "--set", "gate=valid,form@2"], "gate form@2: the floor after @ must be a number"),
    # a tail share of 1 would make the nucleus prior the prior itself; 0 an infinite penalty
    (["--checkpoint", "{run}", "--set", "prior_tail=1"], "config key prior_tail: expected a number > 0 and < 1"),
    (["--checkpoint", "{run}", "--set", "prior_top_p=0"], "config key prior_top_p: expected a number > 0 and <= 1"),
])
def test_finetune_bad_inputs(tiny_run, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, run=tiny_run) for a in args]
    code, _, err = cli("finetune", "--config", "tiny", "--out", tmp_path / "o", *args, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_without_abc2midi_the_run_says_which_rewards_score_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    from rlmusic import validity

    monkeypatch.setattr(validity, "abc2midi_path", lambda: None)
    code, _, err = cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", tmp_path / "ft",
                       "--set", "iterations=1", "--set", "ptx_coef=0", capsys=capsys)
    # the default preset gates on abc2midi_clean: the run goes on, saying that gate does not apply
    assert code == 0, err
    assert "abc2midi is not installed (Debian package abcmidi): abc2midi_clean scores nothing" in err


def test_out_with_another_vocabulary_is_refused(tiny_run, tmp_path, capsys):
    other = make_toy_run(tmp_path / "toy")
    out = tmp_path / "ft"
    cli("finetune", "--checkpoint", other, "--config", "tiny", "--out", out, "--set", "iterations=1",
        "--set", "rewards={toy_rewards:share_of_a: 1.0}", "--set", "ptx_coef=0")
    code, _, err = cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, capsys=capsys)
    # another pretrained run would silently become the KL prior of the resumed run
    assert code == 2 and f"holds a run with pretrained={other}" in err and "change the experiment" in err


def test_wandb_offline_run_has_a_table_of_tunes(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "ft"
    assert cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, "--wandb")[0] == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    tables = sorted(runs[0].glob("files/media/table/tunes_*.table.json"))
    assert len(tables) == 2  # one per checkpoint iteration of the tiny preset (2 and 3)
    table = json.loads(tables[0].read_text())
    assert table["columns"][:3] == ["step", "tune", "reward"] and "valid" in table["columns"]
    assert len(table["data"]) == 4 and all(row[1].startswith("X:1") for row in table["data"])


def test_a_reward_that_hangs_stops_the_run_naming_it(tiny_run, tmp_path, capsys):
    start = __import__("time").perf_counter()
    code, _, err = cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", tmp_path / "ft",
                       "--set", "rewards={toy_rewards:hangs: 1.0}", "--set", "rewards_time_limit=1",
                       "--set", "ptx_coef=0", capsys=capsys)
    assert code == 2 and "reward toy_rewards:hangs (path toy_rewards:hangs) did not return within 1 s" in err
    assert __import__("time").perf_counter() - start < 120


def test_traceback_flag_shows_the_plugin_s_own_error(data_dir, capsys):
    code, _, err = cli("evaluate", "--data", data_dir, "--rewards", "toy_rewards:broken", "--traceback",
                       capsys=capsys)
    assert code == 2 and "Traceback" in err and "RuntimeError: this rule is broken" in err
    assert err.rstrip().splitlines()[-1].startswith("error: reward toy_rewards:broken")
    code, _, err = cli("evaluate", "--data", data_dir, "--rewards", "toy_rewards:broken", capsys=capsys)
    assert code == 2 and "Traceback" not in err


def test_a_resumed_finetune_does_not_log_iterations_twice(tiny_run, tmp_path):
    out = tmp_path / "ft"
    common = ["--checkpoint", tiny_run, "--config", "tiny", "--out", out, "--set", "ptx_coef=0",
              "--set", "checkpoint_every=2"]
    assert cli("finetune", *common, "--set", "iterations=3")[0] == 0  # checkpoints at 2 and 3
    RunDir(out).append_metrics({"step": 4, "reward": 0.0})  # logged, then killed before the next checkpoint
    assert cli("finetune", *common, "--set", "iterations=5")[0] == 0
    steps = [r["step"] for r in RunDir(out).read_metrics()]
    assert steps == [1, 2, 3, 4, 5]


def test_dense_credit_goes_to_the_step_that_wrote_the_character():
    from rlmusic.learner import dense_rewards

    primer = 4  # "X:1\n"
    next_type = np.array([[1, 1, 1, 2, 0, 0], [1, 2, 0, 0, 0, 0]])  # row 0 ends at step 3, row 1 at step 1
    finished = [{"dense": [(primer + 2, -1.0), (primer + 2, -0.5), (0, -0.25)]},  # two at step 2; one in the primer
                {"dense": [(primer + 40, -1.0)]}]  # past the end: the last step
    out = dense_rewards(finished, next_type, primer)
    np.testing.assert_allclose(out, [[-0.25, 0, -1.5, 0, 0, 0], [0, -1.0, 0, 0, 0, 0]])


def test_a_finetune_with_dense_credit_logs_it(tiny_run, tmp_path):
    out = tmp_path / "ft"
    assert cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, "--set", "ptx_coef=0",
               "--set", "dense_coef=0.5", "--set", "iterations=2")[0] == 0
    rows = RunDir(out).read_metrics()
    assert all(r["dense_credit"] <= 0 for r in rows)  # untrained tunes: penalties, never bonuses
    assert any(r["dense_credit"] < 0 for r in rows)


def test_the_update_by_length_buckets_is_the_whole_batch_update(tmp_path):
    """Rows sorted by length and cut into buckets cost less to run, but the loss and its gradient must be those
    of the whole batch padded to its longest tune (each bucket weighed by its share of rows x columns)."""
    cfg, rollouts, make_learner = toy_learner(tmp_path, tunes_per_iteration=7, max_length=300)
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
