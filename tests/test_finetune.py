"""Fine-tuning as a command: the KL and reward-weight controllers, the CLI, resume and bad inputs (the learning
itself: test_learner.py)."""

import json

import numpy as np
import pytest

from conftest import cli, make_toy_run
from rlmusic.finetune import FinetuneConfig, adapt_beta, adapt_weight, pi_weight, run_finetune
from rlmusic.rundir import RunDir


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


def test_ptx_data_outside_the_vocabulary_is_named(tmp_path, capsys):
    pre = make_toy_run(tmp_path / "pre")
    data = tmp_path / "real.abc"
    data.write_text("X:1\nT:Zed\nK:C\nABcd|\n")
    code, _, err = cli("finetune", "--checkpoint", pre, "--config", "tiny", "--out", tmp_path / "ft",
                       "--set", "rewards={toy_rewards:share_of_a: 1.0}", "--set", "ptx_coef=0.5",
                       "--set", f"ptx_data=[{data}]", capsys=capsys)
    assert code == 2 and "ptx_data" in err and "Traceback" not in err
    assert not (tmp_path / "ft" / "checkpoints").exists()


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
                             tunes_per_iteration=4, max_length=8, checkpoint_every=100, constrain="none", **fields)
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
                  ptx_coef=0.0, tunes_per_iteration=4, max_length=8, checkpoint_every=2, constrain="none")
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
                  max_length=8, checkpoint_every=2, constrain="none")
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
    assert {"kl", "entropy", "tunes_per_sec", "valid_rate", "rewards/strain_cadences", "rewards/realness_odds"} <= set(rows[0])
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
                       "--set", "iterations=1", "--set", "ptx_coef=0", "--set", "rewards.abc2midi_clean=1",
                       "--set", "gate=abc2midi_clean", capsys=capsys)
    # a design that gates on abc2midi_clean (syntax_by_reward): the run goes on, saying that gate does not apply
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
    assert table["columns"][:3] == ["step", "tune", "reward"] and "realness_odds" in table["columns"]
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


def test_a_finetune_with_dense_credit_logs_it(tiny_run, tmp_path):
    out = tmp_path / "ft"
    # unmasked, on syntax rewards: under the grammar's mask every tune is valid, and they place no penalty
    assert cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, "--set", "ptx_coef=0",
               "--set", "dense_coef=0.5", "--set", "iterations=2", "--set", "constrain=none",
               "--set", "rewards={valid: 1.0, bar_durations: 1.0, in_key: 1.0}", "--set", "gate=valid")[0] == 0
    rows = RunDir(out).read_metrics()
    assert all(r["dense_credit"] <= 0 for r in rows)  # untrained tunes: penalties, never bonuses
    assert any(r["dense_credit"] < 0 for r in rows)


