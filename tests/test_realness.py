"""How real: the discriminators, feature distributions, form metrics and copying, on hand-written and real ABC."""

import random
import re
import shutil

import numpy as np
import pytest

from rlmusic import realness, structure
from rlmusic.abc import scan

H = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n"
A8 = "|:DFAF DFAF|GBdB GBdB|DFAF DFAF|E2E2 E4|DFAF DFAF|GBdB GBdB|A2FA GFED|D2D2 D4:|"
B8 = "|:dfaf dfaf|gbag fedc|dfaf dfaf|e2e2 e4|dfaf dfaf|gbag fedc|d2fd cBAG|F2D2 D4:|"


@pytest.fixture(scope="module")
def corpus():
    from rlmusic.corpus import load_corpus

    tunes = load_corpus(["oneills1850"]).tunes
    random.Random(0).shuffle(tunes)
    return tunes


FORM_CASES = [
    # (comment, tune, repeat signs, AABB, meter consistent)
    ("two repeated 8-bar strains: AABB", H + A8 + "\n" + B8, True, True, True),
    ("the same, written out instead of repeated", H + (A8.replace("|:", "|").replace(":|", "||") * 2) + "\n" +
     (B8.replace("|:", "|").replace(":|", "||") * 2), False, True, True),
    ("one strain only", H + A8, True, False, True),
    ("a 3-bar strain is not a strain of the tradition", H + "|:DFAF DFAF|GBdB GBdB|D8:|\n" + B8, True, False, True),
    ("a pickup and a short last bar are fine", H + "A|" + A8[2:-3] + "D3:|", True, False, True),
    ("a long bar inside a strain is not", H + "|:DFAF DFAF A|GBdB GBdB|D8:|", True, False, False),
    ("a second ending belongs to its strain", H + "|:DFAF DFAF|GBdB GBdB|DFAF DFAF|E2E2 E4|DFAF DFAF|GBdB GBdB|"
     "A2FA GFED|1 D2D2 D4:|2 D2D2 D2FA||\n" + B8, True, True, True),
]


@pytest.mark.parametrize("comment,tune,repeats,aabb,consistent", FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_form_of_hand_written_tunes(comment, tune, repeats, aabb, consistent):
    s = scan(tune)
    assert structure.has_repeat_signs(tune) is repeats
    assert structure.is_aabb(tune, s) is aabb
    assert structure.meter_consistent(s, tune) is consistent


def test_bar_line_pattern_is_the_outline():
    # chord symbols and inline fields are not bar lines; endings stay with their bar line
    assert structure.bar_line_pattern(H + '"D"DFAF DFAF|GBdB [K:G] GBdB|1 D4 :|2 D4 ||') == "| |1 :|2 ||"
    form = realness.form([H + A8] * 3 + [H + B8.replace(":|", "||")], [scan(H + A8)] * 3 + [scan(H + B8)])
    assert form["bar_patterns_per_1000"] == 500 and form["top15_bar_pattern_share"] == 1.0


def test_a_distribution_overlaps_itself_fully_and_a_far_one_barely():
    x = np.random.default_rng(0).normal(0, 1, 300)
    same, kl_same = realness.overlap_and_kl(x, x)
    assert same == pytest.approx(1.0, abs=1e-6) and kl_same == pytest.approx(0.0, abs=1e-6)
    far, kl_far = realness.overlap_and_kl(x, x + 10)
    assert far < 0.01 and kl_far > 5


def test_tv_distance():
    assert realness.tv_distance(["a", "b"], ["a", "b"]) == 0.0
    assert realness.tv_distance(["a"], ["b"]) == 1.0
    assert realness.tv_distance(["a", "a", "b", "b"], ["a", "a", "a", "b"]) == pytest.approx(0.25)


def test_the_discriminator_cannot_tell_real_from_real(corpus):
    scores = realness.discriminator(corpus[:200], corpus[200:400])
    assert 0.40 <= scores["discriminator_text"] <= 0.60
    assert 0.40 <= scores["discriminator_features"] <= 0.60


def test_the_discriminator_tells_an_untrained_model_from_real(corpus, tiny_run):
    from rlmusic.rundir import load_model
    from rlmusic.sample import Sampler

    model, vocab, _ = load_model(tiny_run)
    fake = [t.text for t in Sampler(model, vocab).generate(80, max_length=300, seed=0)]
    scores = realness.discriminator(fake, corpus[:80])
    assert scores["discriminator_text"] > 0.85 and scores["discriminator_features"] > 0.85


def test_copying_flags_a_set_copied_from_training(corpus):
    training = [scan(t) for t in corpus[100:]]
    index = realness.CopyIndex(training, bars=4)
    copied = realness.copying([scan(t) for t in corpus[100:140]], index)  # taken from the training side
    held_out = realness.copying([scan(t) for t in corpus[:40]], index)
    assert copied["copies_4_bars"] == 1.0 and copied["exact_copies"] == 1.0
    assert held_out["exact_copies"] < 0.2 and held_out["copies_4_bars"] < copied["copies_4_bars"]
    twice = realness.copying([scan(corpus[0])] * 4, index)
    assert twice["duplicate_tunes"] == 0.75 and twice["distinct_bars"] < 0.5


def test_distributions_of_real_halves_are_close(corpus):
    a, b = [scan(t) for t in corpus[:200]], [scan(t) for t in corpus[200:400]]
    d = realness.distributions(a, b)
    assert d["feature_overlap"] > 0.8 and d["key_mode_tv"] < 0.15
    assert set(f"overlap/{f}" for f in realness.FEATURES) <= set(d)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_the_report_in_a_real_browser(tiny_run, data_dir, tmp_path, capsys):
    from conftest import cli
    from test_render import dump_dom

    hostile = tmp_path / "hostile.abc"
    hostile.write_text("".join(f"X:{i}\nT:<script>alert({i})</script>\nM:4/4\nL:1/8\nK:D\nDFAF DFAF|GBdB GBdB|"
                               "DFAF DFAF|E2E2 E4|\n\n" for i in range(1, 13)))
    out = tmp_path / "report"
    code, _, err = cli("evaluate", "--checkpoint", tiny_run, "--data", hostile, "--num", 6, "--max-length", 80,
                       "--report", out, capsys=capsys)
    assert code == 0, err
    dom, console = dump_dom(out / "index.html")
    assert console == []
    body = re.search(r"<body([^>]*)>", dom).group(1)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    assert images >= 5 and f'data-images-drawn="{images}"' in body  # both plots and the real tunes' scores
    assert dom.count("<script") == 1 and "&lt;script&gt;alert(" in dom
    assert "discriminator_text" in dom


def test_an_extended_copy_index_equals_one_built_whole(corpus):
    a, b = [scan(t) for t in corpus[:30]], [scan(t) for t in corpus[30:60]]
    base = realness.CopyIndex(a)
    both = base.extended(b)
    whole = realness.CopyIndex(a + b)
    assert (both.windows, both.tunes) == (whole.windows, whole.tunes)
    assert base.windows == realness.CopyIndex(a).windows  # left as it was
