"""DPO (rlmusic/dpo.py): the loss, the pairs, and a toy model whose preferred tunes gain log-ratio."""

import json
import math
import random

import numpy as np
import pytest

from rlmusic.dpo import batches, decided_pairs, dpo_loss

HEADER = "X:1\nT:T\nM:4/4\nK:C\n"  # the toy vocabulary (tests/conftest.py) has no lower-case t


@pytest.mark.parametrize("choice,pair", [
    ("a", ("x", "y")),  # the left tune won: it is the chosen one
    ("b", ("y", "x")),  # the right tune won
    ("none", None),     # no preference: nothing to learn, left out
])
def test_decided_pairs(choice, pair):
    got = decided_pairs([{"a": "x", "b": "y", "choice": choice}])
    assert got == ([pair] if pair else [])


@pytest.mark.parametrize("pi_w,pi_l,ref_w,ref_l,loss", [
    (0.0, 0.0, 0.0, 0.0, math.log(2)),                    # the policy is the reference: log 2
    (1.0, 0.0, 0.0, 0.0, -math.log(1 / (1 + math.exp(-0.1)))),  # the chosen tune gained 1 nat of log-ratio
    (-5.0, -5.0, -9.0, -9.0, math.log(2)),                # both moved alike: no preference expressed
])
def test_dpo_loss(pi_w, pi_l, ref_w, ref_l, loss):
    got, margin, _ = dpo_loss(np.array([pi_w]), np.array([pi_l]), np.array([ref_w]), np.array([ref_l]), 0.1)
    assert float(got) == pytest.approx(loss, rel=1e-6)
    assert float(margin) == pytest.approx((pi_w - ref_w) - (pi_l - ref_l))


def test_batches_cover_every_pair_once_per_pass_and_resume_in_place():
    pairs = list(range(10))
    feed = batches(pairs, 5, seed=3, start=0)
    first_pass = next(feed) + next(feed)
    assert sorted(first_pass) == pairs
    later = [next(feed) for _ in range(3)]
    resumed = batches(pairs, 5, seed=3, start=2)  # a resumed run at iteration 2 reads the same batches
    assert [next(resumed) for _ in range(3)] == later


def toy_pairs(n, seed):
    rng = random.Random(seed)
    return [{"a": HEADER + "".join(rng.choice("AAc") for _ in range(12)) + "|",
             "b": HEADER + "".join(rng.choice("BBd") for _ in range(12)) + "|", "choice": "a"} for _ in range(n)]


def test_dpo_raises_the_preferred_tunes_log_ratio_on_held_out_pairs(tmp_path):
    """A listener who always prefers the tune of A's: after DPO the policy favours such tunes, relative to the
    reference, on pairs it never saw."""
    from conftest import cli, make_toy_run
    from rlmusic.dpo import encode_batch, sequence_logp
    from rlmusic.rundir import RunDir, load_model

    toy = make_toy_run(tmp_path / "toy")
    prefs = tmp_path / "preferences.jsonl"
    prefs.write_text("".join(json.dumps(c) + "\n" for c in toy_pairs(64, seed=0)))
    out = tmp_path / "dpo"
    common = ["finetune", "--checkpoint", toy, "--config", "tiny", "--out", out, "--set", "agent=dpo",
              "--set", f"preferences={prefs}", "--set", "learning_rate=0.01", "--set", "tunes_per_iteration=32"]
    assert cli(*common, "--set", "iterations=20")[0] == 0
    assert cli(*common, "--set", "iterations=25")[0] == 0  # resumed
    rows = [r for r in RunDir(out).read_metrics() if "margin" in r]
    assert [r["step"] for r in rows] == list(range(1, 26))
    held_out = decided_pairs(toy_pairs(16, seed=1))
    policy, vocab, _ = load_model(out)
    reference, _, _ = load_model(toy)
    def logp(model, tunes):
        ids, mask = encode_batch(vocab, tunes)
        return sequence_logp(model, ids, mask).numpy()

    winners, losers = [w for w, _ in held_out], [lo for _, lo in held_out]
    pi_w, pi_l, ref_w, ref_l = logp(policy, winners), logp(policy, losers), logp(reference, winners), \
        logp(reference, losers)
    assert np.mean((pi_w - ref_w) - (pi_l - ref_l)) > 1.0  # nats: the preferred kind gained


def test_dpo_without_preferences_is_an_error(tmp_path, capsys):
    from conftest import cli, make_toy_run

    code, _, err = cli("finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny", "--out",
                       tmp_path / "d", "--set", "agent=dpo", capsys=capsys)
    assert code == 2 and "error: agent dpo needs preferences" in err
