"""The `realness` reward: a discriminator trained in the loop between real tunes and the tunes it scores."""

from __future__ import annotations

import numpy as np

from rlmusic.rewards import registry
from rlmusic.rewards.discriminator import Discriminator, OddsGuard

# Real tunes step through a scale; the "policy" writes one note over and over: easy to tell apart.
REAL = [f"X:{i}\nM:4/4\nK:D\n{'DEFG ABcd|' * 4}dcBA GFED|\n" for i in range(200)]
FAKE = [f"X:{i}\nM:4/4\nK:D\n{'DDDD DDDD|' * 6}\n" for i in range(200)]


def test_it_learns_to_tell_the_policy_s_tunes_from_real_ones():
    d = Discriminator(real=REAL, retrain_every=32, memory=64, length=96, epochs=4, warmup=32)
    first = d(FAKE[:16])
    assert first == [0.5] * 16  # before warmup: no opinion (a constant reward teaches nothing)
    assert d.trained == 0
    d(FAKE[16:32])  # warmup reached: trains
    assert d.trained == 1
    for start in range(32, 160, 32):
        d(FAKE[start:start + 32])
    assert d.trained == 5  # every 32 tunes scored
    real, fake = d.probability_real(REAL[:20]), d.probability_real(FAKE[160:180])
    assert real.mean() > 0.8 and fake.mean() < 0.2, (real.mean(), fake.mean())


def test_a_tune_is_scored_before_the_discriminator_learns_from_it():
    d = Discriminator(real=REAL, retrain_every=1000, memory=64, length=96, epochs=8, warmup=32)
    d(FAKE[:32])  # trains once on these
    before = d.probability_real(FAKE[32:48])
    scored = d(FAKE[32:48])  # would train again only after 1000 more
    np.testing.assert_allclose(scored, before)
    assert d.trained == 1


def test_the_x_line_is_not_evidence():
    d = Discriminator(real=REAL, length=64)
    np.testing.assert_array_equal(d.encode(["X:1\nK:D\nABc"]), d.encode(["X:977\nK:D\nABc"]))
    assert d.encode(["K:D\n" + "A" * 100]).shape == (1, 64)  # cut to length


def test_it_is_a_built_in_reward_with_a_summary():
    info = registry.get("realness")
    assert info.source == "built-in" and "discriminator" in info.summary


def test_it_trains_inside_a_finetune_loop(tiny_run, tmp_path, monkeypatch):
    """The reward runs TensorFlow (scoring and training) from inside the compiled collection loop."""
    from conftest import cli
    from rlmusic.rundir import RunDir

    (tmp_path / "my_disc.py").write_text(
        "from rlmusic.rewards.discriminator import Discriminator\n"
        f"REAL = {REAL[:50]!r}\n"
        "disc = Discriminator(real=REAL, retrain_every=4, memory=16, length=64, warmup=4)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "ft"
    assert cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", out, "--set", "ptx_coef=0",
               "--set", "rewards={my_disc:disc: 1.0}", "--set", "gate=", "--set", "iterations=3")[0] == 0
    import my_disc

    assert my_disc.disc.trained >= 2  # trained during the run, from inside the loop
    scores = [r["rewards/my_disc:disc"] for r in RunDir(out).read_metrics()]
    assert scores[0] == 0.5 and all(0.0 <= s <= 1.0 for s in scores) and scores[-1] != 0.5


def test_by_default_the_real_tunes_are_the_default_corpus():
    from rlmusic.corpus import DEFAULT_SOURCES, load_corpus

    real = Discriminator().real
    assert len(real) > 10_000 and real[:3] == load_corpus(DEFAULT_SOURCES).tunes[:3]


# --- realness_odds: the linear discriminators of evaluate, refit in the loop ---------------------------------
def test_the_odds_guard_tells_the_policy_s_tunes_from_real_ones():
    g = OddsGuard(real=REAL, memory=64, refit_every=32, warmup=32)
    assert g(FAKE[:16]) == [0.5] * 16  # before warmup: no opinion
    d = g(FAKE[16:32])  # warmup reached: fits, but these were scored before it
    assert d == [0.5] * 16 and g.fitted == 1
    for start in range(32, 128, 32):
        g(FAKE[start:start + 32])
    assert g.fitted == 4  # every 32 tunes scored
    real, fake = g(REAL[:8]), g(FAKE[128:136])
    assert min(real) > 0.8 and max(fake) < 0.2, (real, fake)
    assert all(0.0 <= s <= 1.0 for s in real + fake)  # clipped log-odds mapped onto [0, 1]


def test_the_odds_guard_scores_on_the_log_odds_scale():
    """0.5 + log-odds / (2 clip): a tune the classifiers find e times likelier real than not scores 0.5 + 1/6."""
    g = OddsGuard(real=REAL, memory=64, refit_every=1000, warmup=32, clip=3.0)
    g(FAKE[:32])
    odds = g.log_odds(FAKE[40:44] + REAL[:4])
    scores = g(FAKE[40:44] + REAL[:4])
    np.testing.assert_allclose(scores, 0.5 + np.clip(odds, -3, 3) / 6)


def test_realness_odds_is_a_built_in_reward():
    info = registry.get("realness_odds")
    assert info.source == "built-in" and "log-odds" in info.summary


def test_the_odds_guard_text_view_takes_evaluate_s_regularisation_when_asked():
    """text_c=10 fits the text view as evaluate's discriminator does; the features keep C=1 either way."""
    for c in (1.0, 10.0):
        g = OddsGuard(real=REAL, memory=32, warmup=32, text_c=c)
        g(FAKE[:32])
        text, features = g.views
        assert (text[-1].C, features[-1].C) == (c, 1.0)


# --- what "real" means: the reward context's real_tunes (finetune: the pretrained run's training tunes) ---------
def test_the_built_in_guards_compare_with_the_context_s_real_tunes():
    from rlmusic.rewards.discriminator import realness_odds
    from rlmusic.rewards.music import typical

    real = list(REAL)  # a list of its own: one guard per set of real tunes
    for start in range(0, 128, 32):
        realness_odds(FAKE[start:start + 32], real_tunes=real)
    scores = realness_odds(REAL[:4] + FAKE[:4], real_tunes=real)
    assert min(scores[:4]) > 0.8 and max(scores[4:]) < 0.2, scores  # fitted against REAL, not the corpus
    # a function returning the tunes works as the list does (finetune passes one, read when first needed)
    assert realness_odds(REAL[:4], real_tunes=lambda: real) == scores[:4]
    # typical: every real tune here has the same shape, so that shape is the median of every feature (1.0);
    # against the default collections a 9-bar scale in quavers is an ordinary, not a perfectly median, tune
    assert typical(REAL[:1], real_tunes=real) == [1.0]
    assert typical(REAL[:1])[0] < 1.0


def test_finetune_gives_the_rewards_the_pretrained_run_s_training_tunes(tiny_run, tmp_path, monkeypatch):
    """The default guards must not compare a model pretrained on other music with music21's folk tunes."""
    from conftest import cli

    (tmp_path / "seen_real.py").write_text(
        "from rlmusic.rewards.mix import real_tunes\n"
        "SEEN = []\n"
        "def record(tunes, **context):\n"
        "    SEEN.append(real_tunes(context))\n"
        "    return [0.0 for _ in tunes]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli("finetune", "--checkpoint", tiny_run, "--config", "tiny", "--out", tmp_path / "ft",
               "--set", "ptx_coef=0", "--set", "rewards={seen_real:record: 1.0}", "--set", "gate=",
               "--set", "iterations=1")[0] == 0
    import seen_real
    from rlmusic import config
    from rlmusic.data import DataConfig, prepare

    data = config.from_dict(DataConfig, config.read_yaml(tiny_run / "config.yaml")["data"])
    expected = prepare(data, log=lambda m: None).train  # the tests' small corpus, its training split
    assert seen_real.SEEN and all(seen is seen_real.SEEN[0] for seen in seen_real.SEEN)  # read once
    assert seen_real.SEEN[0] == expected and len(expected) < 100


def test_a_guard_made_without_real_tunes_takes_the_context_s():
    # benchmarks/guards.py makes OddsGuard(text_c=10) at import, before any run says what real is
    g = OddsGuard(memory=64, refit_every=32, warmup=32)
    for start in range(0, 96, 32):
        g(FAKE[start:start + 32], real_tunes=REAL)
    assert g.real is REAL and min(g(REAL[:4])) > 0.8
