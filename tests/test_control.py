"""The guard on the KL target (rlmusic/control.py: guarded_kl_target), table-driven."""

import pytest

from rlmusic.control import GUARD_STEPS, guarded_kl_target


@pytest.mark.parametrize("tightened,mean,floor,target,after", [
    (0, 0.40, 0.45, 0.05, 1),    # the guard fell below its floor: the target is halved
    (1, 0.40, 0.45, 0.025, 2),   # and halved again while it stays below
    (GUARD_STEPS, 0.1, 0.45, 0.1 * 0.5 ** GUARD_STEPS, GUARD_STEPS),  # never below 1/16 of the configured target
    (2, 0.50, 0.45, 0.05, 1),    # the guard is back: one step back toward the configured target per iteration
    (0, 0.50, 0.45, 0.1, 0),     # above the floor from the start: the configured target
    (0, 0.45, 0.45, 0.1, 0),     # at the floor counts as holding
    (3, None, 0.45, 0.0125, 3),  # no tune scored (the guard applied to none): nothing changes
])
def test_guarded_kl_target(tightened, mean, floor, target, after):
    got, count = guarded_kl_target(0.1, tightened, mean, floor)
    assert got == pytest.approx(target) and count == after


def test_a_guard_the_rewards_do_not_weight_is_scored_with_weight_0():
    from rlmusic.finetune import FinetuneConfig

    cfg = FinetuneConfig(rewards={"in_key": 1.0}, gate="", guard="typical", guard_floor=0.4)
    assert cfg.rewards == {"in_key": 1.0, "typical": 0.0}
    weighted = FinetuneConfig(rewards={"in_key": 1.0, "typical": 0.5}, gate="", guard="typical")
    assert weighted.rewards["typical"] == 0.5  # a weight the user gave is kept


def test_a_guard_below_its_floor_tightens_the_kl_target_and_a_resume_continues(tmp_path, monkeypatch):
    """toy_rewards:share_of_a is at most 1, so a floor of 2 is never met: the target halves every iteration, and a
    resumed run goes on from the halvings it had (they are in the checkpoint)."""
    from pathlib import Path

    from conftest import cli, make_toy_run
    from rlmusic.rundir import RunDir

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "ft"
    common = ["finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny", "--out", out,
              "--set", "ptx_coef=0", "--set", "guard=toy_rewards:share_of_a", "--set", "guard_floor=2",
              "--set", "kl_target=0.08", "--set", "checkpoint_every=1"]
    assert cli(*common, "--set", "iterations=2")[0] == 0
    assert cli(*common, "--set", "iterations=3")[0] == 0
    targets = [r["kl_target"] for r in RunDir(out).read_metrics() if "kl_target" in r]
    assert targets == pytest.approx([0.04, 0.02, 0.01])
    assert all("rewards/toy_rewards:share_of_a" in r for r in RunDir(out).read_metrics() if "kl" in r)
