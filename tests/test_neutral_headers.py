"""Header-neutral rewards (rlmusic/neutral.py: header_value, neutral_offsets; FinetuneConfig.neutral_headers)."""

import numpy as np
import pytest

from rlmusic.neutral import NEUTRAL_PRIOR, group_value, header_value, neutral_offsets


@pytest.mark.parametrize("tune,field,value", [
    ("X:1\nT:a\nM:6/8\nK:G\nGAB|", "K", "g"),         # the key, lower-cased
    ("X:1\nT:a\nM:6/8\nK: G Maj\nGAB|", "K", "gmaj"),  # spaces dropped: "G Maj" and "Gmaj" are one group
    ("X:1\nT:a\nM:C|\nK:D\nGAB|", "M", "c|"),         # the meter
    ("X:1\nT:a\nK:D\nGAB|", "M", ""),                  # no M: line: a group of its own
    ("X:1\nT:a\nK:D\nGAB|\nK:A\nABc|", "K", "d"),     # the first K: line, not a key change in the body
    ("X:1\nT:a\nM:3/4\nGAB|\nM:2/4\nK:A", "K", ""),   # header lines after the body has begun are not the header
])
def test_header_value(tune, field, value):
    assert header_value(tune, field) == value


def tune(key: str, meter: str = "6/8") -> str:
    return f"X:1\nT:t\nM:{meter}\nK:{key}\nGAB|"


def test_one_key_for_all_tunes_changes_nothing():
    totals = np.array([1.0, 2.0, 3.0, 0.5])
    assert neutral_offsets([tune("G")] * 4, totals, ["K"]) == pytest.approx(np.zeros(4))


def test_the_key_where_rewards_come_easy_gains_nothing_by_itself():
    """8 tunes in G earn 2, 8 in D earn 0: each group's mean (shrunk by NEUTRAL_PRIOR tunes) moves to the batch
    mean, so the gap between the keys shrinks by n / (n + prior)."""
    tunes = [tune("G")] * 8 + [tune("D")] * 8
    totals = np.array([2.0] * 8 + [0.0] * 8)
    got = totals + neutral_offsets(tunes, totals, ["K"])
    gap = got[:8].mean() - got[8:].mean()
    assert gap == pytest.approx(2.0 * NEUTRAL_PRIOR / (8 + NEUTRAL_PRIOR))
    # within a key the order is untouched: a better tune in G still earns more than a worse one in G
    totals[0] = 3.0
    got = totals + neutral_offsets(tunes, totals, ["K"])
    assert got[0] - got[1] == pytest.approx(1.0)


def test_fields_are_neutralised_in_turn():
    """The meter carries the whole difference here (the keys are balanced within each meter): neutral K alone
    leaves it, K,M removes most of it."""
    tunes = [tune("G", "6/8"), tune("D", "6/8")] * 6 + [tune("G", "2/4"), tune("D", "2/4")] * 6
    totals = np.array([2.0] * 12 + [0.0] * 12)
    only_key = totals + neutral_offsets(tunes, totals, ["K"])
    both = totals + neutral_offsets(tunes, totals, ["K", "M"])
    assert only_key[:12].mean() - only_key[12:].mean() == pytest.approx(2.0)
    assert both[:12].mean() - both[12:].mean() == pytest.approx(2.0 * NEUTRAL_PRIOR / (12 + NEUTRAL_PRIOR))


@pytest.mark.parametrize("fields", ["K,Meter", "K;M", "1"])
def test_a_bad_field_is_an_error_naming_it(fields):
    from rlmusic.errors import UserError
    from rlmusic.finetune import FinetuneConfig

    with pytest.raises(UserError, match="neutral_headers"):
        FinetuneConfig(neutral_headers=fields)


def test_a_run_with_neutral_headers_logs_the_correction(tmp_path):
    from conftest import cli, make_toy_run
    from rlmusic.rundir import RunDir

    out = tmp_path / "ft"
    code = cli("finetune", "--checkpoint", make_toy_run(tmp_path / "toy"), "--config", "tiny", "--out", out,
                  "--set", "ptx_coef=0", "--set", "neutral_headers=K,M", "--set", "iterations=1")[0]
    assert code == 0
    rows = [r for r in RunDir(out).read_metrics() if "kl" in r]
    assert rows and rows[-1]["neutral_offset"] >= 0.0


@pytest.mark.parametrize("tune,group", [
    ("X:1\nM:4/4\nK:D\nABcd|", "0"),                              # one bar of notes
    ("X:1\nM:4/4\nK:D\n" + "ABcd|" * 8, "1"),                     # 8 bars: the second group
    ("X:1\nM:4/4\nK:D\n" + "ABcd|" * 15 + "z4|", "1"),            # a bar of rests is no bar of notes: 15
    ("X:1\nM:4/4\nK:D\n|:" + "ABcd|" * 7 + "ABcd:|" + "\n" + "cdef|" * 8, "2"),  # two 8-bar strains
    ("X:1\nM:4/4\nK:D\n" + "ABcd|" * 64, "4"),                    # 32 bars and more: one group
    ("X:1\nM:4/4\nK:D\n", "0"),                                   # no notes
])
def test_length_groups(tune, group):
    assert group_value(tune, "length") == group


def test_a_longer_tune_gains_nothing_by_its_length():
    """Long tunes earn 2 and short ones 0: grouped by `length`, the gap shrinks as the key's does."""
    short, long_ = "X:1\nM:4/4\nK:D\n" + "ABcd|" * 8, "X:1\nM:4/4\nK:D\n" + "ABcd|" * 24
    totals = np.array([0.0] * 8 + [2.0] * 8)
    got = totals + neutral_offsets([short] * 8 + [long_] * 8, totals, ["length"])
    assert got[8:].mean() - got[:8].mean() == pytest.approx(2.0 * NEUTRAL_PRIOR / (8 + NEUTRAL_PRIOR))


def test_length_is_a_valid_neutral_field():
    from rlmusic.finetune import FinetuneConfig

    assert FinetuneConfig(neutral_headers="K,M,length").neutral_headers == "K,M,length"


def bars(n: int, notes: str = "ABcd") -> str:
    return "X:1\nM:4/4\nK:D\n" + f"{notes}|" * n


@pytest.mark.parametrize("tunes, totals, trend, flat", [
    # one 8-bar group, tunes of 8 to 15 bars whose return falls with length (a KL charge): the groups cannot
    # see it, the trend takes it out
    ([bars(n) for n in range(8, 16)], [-0.1 * n for n in range(8, 16)], True, True),
    ([bars(n) for n in range(8, 16)], [-0.1 * n for n in range(8, 16)], False, False),
    # two groups that differ, and a slope inside each: the trend levels what the groups leave
    ([bars(n) for n in (8, 10, 12, 14, 16, 18, 20, 22)], [1.0, 0.8, 0.6, 0.4, 3.0, 2.8, 2.6, 2.4], True, True),
    # no length difference in characters: nothing to fit, the groups alone (here: one group, nothing moves)
    ([bars(9)] * 4, [0.0, 1.0, 2.0, 3.0], True, False),
])
def test_the_trend_over_characters_is_taken_out_with_length(tunes, totals, trend, flat):
    """With `trend`, what is left after the length groups has no least-squares slope over characters; within
    any length, a better tune still earns more."""
    totals = np.array(totals)
    got = totals + neutral_offsets(tunes, totals, ["length"], trend=trend)
    chars = np.array([len(t) for t in tunes], float)
    if np.ptp(chars) == 0:
        assert got == pytest.approx(totals)  # one group and one length: untouched
        return
    slope = np.polyfit(chars, got, 1)[0]
    assert (abs(slope) < 1e-9) == flat


def test_the_trend_leaves_the_order_within_a_length():
    """Two tunes of each length: the better one of a pair still earns more, by the same amount."""
    tunes = [bars(n) for n in (8, 8, 12, 12, 20, 20)]
    totals = np.array([1.0, 0.0, 0.5, -0.5, 0.2, -0.8])
    got = totals + neutral_offsets(tunes, totals, ["K", "M", "length"], trend=True)
    assert got[0::2] - got[1::2] == pytest.approx(np.ones(3))


def test_the_trend_is_only_length_s():
    """`trend` changes nothing for header fields: a key is not a length."""
    tunes = [bars(n) for n in range(8, 16)]
    totals = np.array([-0.1 * n for n in range(8, 16)])
    assert neutral_offsets(tunes, totals, ["K"], trend=True) == pytest.approx(neutral_offsets(tunes, totals, ["K"]))


def test_an_exempt_reward_keeps_its_price_of_a_key():
    """neutral_exempt: the guard's part of the return (in info["neutral_exempt"]) is left out of the re-centring,
    so a key real tunes rarely use still costs what the guard says; the rest of the return is re-centred."""
    from types import SimpleNamespace

    from rlmusic._tf import tf
    from rlmusic.learner import Learner

    tunes = [tune("G")] * 8 + [tune("Bb")] * 8
    music = np.array([1.0] * 8 + [0.0] * 8)      # the music rewards come easier in G
    guard = np.array([0.5] * 8 + [-0.5] * 8)     # the guard says Bb is unlike the tradition
    finished = [{"tune": t, "neutral_exempt": g} for t, g in zip(tunes, guard)]
    exp = SimpleNamespace(reward=tf.constant((music + guard)[:, None]))
    learner = SimpleNamespace(neutral_return="task", neutral_headers=["K"])
    Learner.neutralize(learner, exp, finished, [], [], 0.1)
    got = music + guard + np.array([info["neutral_offset"] for info in finished])
    gap = got[:8].mean() - got[8:].mean()
    # the music's gap shrinks as any field's does; the guard's gap of 1.0 stays whole
    assert gap == pytest.approx(1.0 + 1.0 * NEUTRAL_PRIOR / (8 + NEUTRAL_PRIOR))


@pytest.mark.parametrize("exempt, error", [
    ("realness_odds", None),                  # a weighted reward: allowed
    ("realness_odds,form", None),             # several
    ("typical_guard", "neutral_exempt"),      # a gate: it scales the others, it cannot be left out
    ("nonesuch", "neutral_exempt"),           # not a reward of this run
])
def test_neutral_exempt_names_weighted_rewards(exempt, error):
    from rlmusic.errors import UserError
    from rlmusic.finetune import FinetuneConfig

    if error is None:
        assert FinetuneConfig(neutral_exempt=exempt).neutral_exempt == exempt
    else:
        with pytest.raises(UserError, match=error):
            FinetuneConfig(neutral_exempt=exempt)


@pytest.mark.parametrize("weights, gates, scores, expected", [
    # no gate: the guard's part is its weight times its score
    ({"form": 1.0, "realness_odds": 2.0}, "", {"form": 0.5, "realness_odds": 0.25}, 0.5),
    # a gate at 0.5 scales the guard's part as it scales every other reward's
    ({"form": 1.0, "realness_odds": 2.0, "enough_bars": 1.0}, "enough_bars", {"form": 0.5, "realness_odds": 0.25,
                                                                            "enough_bars": 0.5}, 0.25),
    # a guard that scored nothing (None) has no part
    ({"form": 1.0, "realness_odds": 2.0}, "", {"form": 0.5, "realness_odds": None}, 0.0),
])
def test_exempt_parts_are_the_rewards_share_of_the_total(weights, gates, scores, expected):
    from rlmusic.neutral import exempt_parts
    from rlmusic.rewards.mix import RewardMix

    finished = [{"rewards": scores}]
    exempt_parts(RewardMix(weights, gates=gates), finished, ["realness_odds"])
    assert finished[0]["neutral_exempt"] == pytest.approx(expected)
