"""The reward mix: one object that resolves names once, scores, gates and totals; its time limit."""

import sys
import time

import pytest

from rlmusic.errors import UserError
from rlmusic import interrupts
from rlmusic.rewards.mix import RewardMix

TUNE = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\nDFA dAF|DFA d2A|FED E2F|D4 z4|"


@pytest.mark.parametrize("weights,gates,scores,expected", [
    # gated on valid: a valid tune earns everything
    ({"in_key": 1.0, "valid": 0.5}, "valid", {"in_key": 1.0, "valid": 1.0}, 1.5),
    # in key but invalid: nothing
    ({"in_key": 1.0, "valid": 0.5}, "valid", {"in_key": 1.0, "valid": 0.0}, 0.0),
    # no gate: a plain weighted sum
    ({"in_key": 1.0, "valid": 0.5}, None, {"in_key": 1.0, "valid": 0.0}, 1.0),
    # a gate that is not weighted is scored for the gate and adds nothing itself
    ({"in_key": 1.0}, "valid", {"in_key": 0.5, "valid": 1.0}, 0.5),
    # two gates multiply: a 2-bar fragment (enough_bars 0.25) earns a quarter
    ({"in_key": 2.0, "valid": 1.0}, "valid,enough_bars", {"in_key": 1.0, "valid": 1.0, "enough_bars": 0.25},
     1.0 + 2.0 * 0.25),
    # abc2midi found errors
    ({"in_key": 1.0}, "valid,abc2midi", {"in_key": 1.0, "valid": 1.0, "abc2midi": 0.5}, 0.5),
    # abc2midi not installed (None): the gate does not apply
    ({"in_key": 1.0}, "valid,abc2midi", {"in_key": 1.0, "valid": 1.0, "abc2midi": None}, 1.0),
    # a reward that does not apply (None) adds nothing
    ({"in_key": 1.0, "valid": 1.0}, None, {"in_key": None, "valid": 1.0}, 1.0),
    # a soft gate scoring 0 keeps its floor: half the reward of a tune without form
    ({"in_key": 1.0}, "valid,form@0.5", {"in_key": 1.0, "valid": 1.0, "form": 0.0}, 0.5),
    # a soft gate in between: 0.5 + 0.5 x 0.5 of the reward
    ({"in_key": 2.0}, "form@0.5", {"in_key": 1.0, "form": 0.5}, 2.0 * 0.75),
    # a soft gate scoring 1 passes everything; its own weight is not scaled
    ({"in_key": 1.0, "form": 2.0}, "form@0.25", {"in_key": 1.0, "form": 1.0}, 3.0),
    # a hard gate still zeroes what a soft one would keep
    ({"in_key": 1.0}, "valid,form@0.5", {"in_key": 1.0, "valid": 0.0, "form": 1.0}, 0.0),
    # floor 0 is the hard gate
    ({"in_key": 1.0}, "form@0", {"in_key": 1.0, "form": 0.25}, 0.25),
    # a negative weight is a charge the gate does not lift: an invalid tune with repeat signs pays it in full, or
    # breaking the tune would be the way to escape it (a reward_targets weight below 0 did this, README)
    ({"in_key": 1.0, "repeat_signs": -2.0}, "valid", {"in_key": 1.0, "valid": 0.0, "repeat_signs": 1.0}, -2.0),
    # ... and a valid one pays the same, while what it earns is scaled by the gates as before
    ({"in_key": 1.0, "repeat_signs": -2.0}, "valid,form@0.5",
     {"in_key": 1.0, "valid": 1.0, "form": 0.0, "repeat_signs": 1.0}, 0.5 - 2.0),
    # a positive weight on a negative score (leaps_resolved is in [-1, 1]) is still scaled by the gates
    ({"leaps_resolved": 1.0}, "valid", {"leaps_resolved": -1.0, "valid": 0.0}, 0.0),
])
def test_total(weights, gates, scores, expected):
    assert RewardMix(weights, gates=gates).total(scores) == pytest.approx(expected)


@pytest.mark.parametrize("gates,message", [
    ("valid,form@1", "gate form@1: the floor after @ must be a number in"),   # 1 would gate nothing
    ("form@-0.5", "gate form@-0.5: the floor"),
    ("form@half", "gate form@half: the floor"),
    ("form@", "gate form@: the floor"),
])
def test_bad_soft_gates_are_named(gates, message):
    with pytest.raises(UserError, match=message):
        RewardMix({"in_key": 1.0}, gates=gates)


def test_soft_gates_parse_to_floors():
    mix = RewardMix({"in_key": 1.0}, gates=" valid , form@0.5")
    assert mix.gates == ["valid", "form"] and mix.floors == {"valid": 0.0, "form": 0.5}


def test_gates_are_scored_and_listed():
    mix = RewardMix({"in_key": 1.0}, gates="valid, enough_bars")
    assert mix.names == ["in_key", "valid", "enough_bars"] and mix.gates == ["valid", "enough_bars"]
    (scores,) = mix.score([TUNE])
    assert scores == {"in_key": 1.0, "valid": 1.0, "enough_bars": 0.5}  # 4 bars of 8
    assert mix.means([scores, {"in_key": None, "valid": 0.0, "enough_bars": 1.0}]) == {
        "in_key": 1.0, "valid": 0.5, "enough_bars": 0.75}


@pytest.mark.parametrize("weights,message", [
    ({"nope": 1.0}, "unknown reward 'nope'"),  # lists the valid names
    ({"valid": float("nan")}, "rewards.valid: the weight must be a finite number"),
    ({"valid": float("inf")}, "rewards.valid: the weight must be a finite number"),
])
def test_bad_mixes_fail_when_built(weights, message):
    with pytest.raises(UserError, match=message):
        RewardMix(weights)


def test_a_reward_that_hangs_is_named_after_the_time_limit(tmp_path, monkeypatch):
    (tmp_path / "slow_rules.py").write_text("import time\ndef hang(tunes, **context):\n    time.sleep(60)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mix = RewardMix({"valid": 1.0, "slow_rules:hang": 1.0}, time_limit=0.5)
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"reward slow_rules:hang \(path slow_rules:hang\) did not return within "
                                        r"0.5 s for 1 tunes"):
        mix.score([TUNE])
    assert time.perf_counter() - start < 5
    assert mix.failure is not None and "slow_rules:hang" in str(mix.failure)


def test_an_interrupt_stops_a_reward_waited_for_off_the_main_thread(tmp_path, monkeypatch):
    (tmp_path / "slow_rules2.py").write_text("import time\ndef hang(tunes, **context):\n    time.sleep(60)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mix = RewardMix({"slow_rules2:hang": 1.0}, time_limit=30)
    interrupts.INTERRUPTED.set()
    try:
        with pytest.raises(UserError, match="interrupted while reward slow_rules2:hang"):
            mix.score([TUNE])
    finally:
        interrupts.INTERRUPTED.clear()


def test_a_plugin_error_keeps_its_cause(tmp_path, monkeypatch):
    (tmp_path / "err_rules.py").write_text("def rule(tunes, **context):\n    raise KeyError('field')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("err_rules", None)
    with pytest.raises(UserError, match="reward err_rules:rule .* raised KeyError") as err:
        RewardMix({"err_rules:rule": 1.0}).score([TUNE])
    assert isinstance(err.value.__cause__, KeyError)


def test_dense_credit_is_weighted_and_a_gate_counts_with_weight_one():
    tune = "X:1\nT:t\nM:4/4\nL:1/8\nK:C\nAB^cd]|"
    mix = RewardMix({"in_key": 2.0, "valid": 0.0}, gates="valid")
    (credits,) = mix.dense([tune])
    assert sorted(credits) == sorted([(tune.index("^c") + 2, -2.0), (tune.index("]"), -1.0)])
    assert RewardMix({"in_key": 0.0}, gates=None).dense([tune]) == [[]]  # weight 0: no credit
    assert "headers" not in RewardMix({"headers": 1.0, "in_key": 1.0}).dense_names  # no dense form


def test_a_dense_form_that_returns_junk_is_named(tmp_path, monkeypatch):
    (tmp_path / "junk_dense.py").write_text("def rule(tunes, **c):\n    return [1.0] * len(tunes)\n"
                                            "rule.per_note = lambda tunes, **c: [['x']] * len(tunes)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match=r"reward junk_dense:rule.per_note .* expected \(offset, credit\) pairs"):
        RewardMix({"junk_dense:rule": 1.0}).dense([TUNE])
