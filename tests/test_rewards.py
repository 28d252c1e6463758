"""Table-driven tests of every built-in reward on hand-written ABC, and of the registry."""

import math
import re
import pickle
import shutil
import sys

import pytest

from rlmusic.errors import UserError
from rlmusic.rewards import available, get, scan_all, score
from rlmusic.rewards.registry import refresh

H = "X:1\nT:t\nM:4/4\nL:1/8\n"

A8 = "|:DFAF DFAF|GBdB GBdB|DFAF DFAF|E2E2 E4|DFAF DFAF|GBdB GBdB|A2FA GFED|D2D2 D4:|"
B8 = "|:dfaf dfaf|gbag fedc|dfaf dfaf|e2e2 e4|dfaf dfaf|gbag fedc|d2fd cBAG|D2D2 D4:|"

CASES = [
    # (reward, tune, expected score, comment)
    ("strains", H + "K:D\n" + A8 + "\n" + B8, 1.0, "two repeated 8-bar strains: the form of the tradition"),
    ("strains", H + "K:D\n" + A8, 0.5, "one repeated strain"),
    ("strains", H + "K:D\n" + A8.replace("|:", "|").replace(":|", "||") * 2, 0.5, "a strain written out twice"),
    ("strains", H + "K:D\nDFAF DFAF|GBdB GBdB|A2FA GFED|D2D2 D4|", 0.0, "no repeat, nothing written twice"),
    ("strains", H + "K:D\n|:DFAF DFAF|GBdB GBdB|D8:|\n" + B8, 0.5, "a 3-bar strain is not one of the tradition"),
    ("form", H + "K:D\n" + A8 + "\n" + B8, 1.0, "two repeated 8-bar strains: sections and shape, full credit"),
    ("form", H + "K:D\n" + A8, 0.5, "one repeated 8-bar strain: one section (0.25), one proper strain (0.25)"),
    ("form", H + "K:D\n" + "DFAF DFAF|GBdB GBdB|DFAF DFAF|E2E2 E4|A2FA GFED||"
     + "dfaf dfaf|gbag fedc|dfaf dfaf|e2e2 e4|d2fd cBAG|]", 0.5,
     "two 5-bar sections between double bars: marked sections, not the tradition's shape"),
    ("form", H + "K:D\nDFAF DFAF|GBdB GBdB||A2FA GFED|D2D2 D4||DFAF DFAF|GBdB GBdB||", 0.0,
     "a double bar every two bars: sections under 4 bars earn nothing"),
    ("form", H + "K:D\nDFAF DFAF|GBdB GBdB|A2FA GFED|D2D2 D4|DFAF GBdB|A2FA D4|", 0.25,
     "no marks at all: the whole tune is one section"),
    ("two_strains", H + "K:D\n" + A8 + "\n" + B8, 1.0, "two repeated 8-bar strains"),
    ("two_strains", H + "K:D\n" + "DFAF DFAF|GBdB GBdB|DFAF DFAF|E2E2 E4|A2FA GFED||"
     + "dfaf dfaf|gbag fedc|dfaf dfaf|e2e2 e4|d2fd cBAG|]", 1.0,
     "two 5-bar sections between double bars: in strains, if not the tradition's 4/8/16 bars"),
    ("two_strains", H + "K:D\n" + A8, 0.0, "one repeated strain: all or nothing, no half credit"),
    ("two_strains", H + "K:D\nDFAF DFAF|GBdB GBdB||A2FA GFED|D2D2 D4||DFAF DFAF|GBdB GBdB||", 0.0,
     "a double bar every two bars: three sections, none of 4 bars"),
    ("two_strains", H + "K:D\nDFAF DFAF|GBdB GBdB|A2FA GFED|D2D2 D4|DFAF GBdB|A2FA D4|", 0.0,
     "no marks: one section"),
    ("repeat_signs", H + "K:D\n" + A8, 1.0, "|: ... :| around a strain"),
    ("repeat_signs", H + "K:D\nDFAF DFAF::GBdB GBdB|", 1.0, "a :: between two repeated parts"),
    ("repeat_signs", H + "K:D\nDFAF DFAF||GBdB GBdB|]", 0.0, "double bars mark sections but repeat nothing"),
    ("repeat_signs", "X:1\nT:t: with a colon\nM:4/4\nL:1/8\nK:D\nDFAF|]", 0.0,
     "the colons of the header lines are not repeat signs"),
    ("answers", H + "K:D\n" + A8 + "\n" + B8, 1.0, "B ends on A's cadence bar"),
    ("answers", H + "K:D\n" + A8 + "\n" + B8.replace("D2D2 D4:|", "f2a2 g4:|"), 0.0,
     "B shares no bar with A and ends elsewhere"),
    ("answers", H + "K:D\n" + A8, None, "one strain: nothing to answer"),
    ("in_key", H + "K:G\nGABc d2f2|", 1.0, "all in G major: the f is F# by the key signature"),
    ("in_key", H + "K:C\nC^CDE|", 0.75, "one chromatic note of four"),
    ("in_key", H + "K:Ador\nABcd efga|", 1.0, "A dorian has F#, written as a plain f"),
    ("in_key", H + "K:Ador\nAB=cd e^fga|", 1.0, "explicit naturals and sharps that the mode allows"),
    ("in_key", H + "K:D\nd^dd2|", pytest.approx(1 / 3), "d# is outside D major, and the sharp holds to the bar"),
    ("in_key", H + "K:D\nd^d|d2|", 2 / 3, "the bar line cancels the sharp"),
    ("in_key", H + "K:C\nz4|", None, "rests only: the rule does not apply"),
    ("tonic_start_end", H + "K:D\nDFA dAF|D4|", 1.0, "starts and ends on D, in any octave"),
    ("tonic_start_end", H + "K:D\nFAd AFA|D4|", 0.5, "ends on the tonic only"),
    ("tonic_start_end", H + "K:Em\nGBe BGB|B4|", 0.0, "E minor: neither G nor B is the tonic"),
    ("no_excessive_repeats", H + "K:C\nA A A A A B|", pytest.approx(1 / 6), "a run of five A: five of six penalised"),
    ("no_excessive_repeats", H + "K:C\nA A A A B B|", 1.0, "four repeats are allowed"),
    ("no_excessive_repeats", H + "K:C\nA2-A2 A A A B|", 1.0, "a tied pair is one note: A A A A B"),
    ("low_autocorrelation", H + "K:C\nCDEFGABc|", pytest.approx(-0.989, abs=1e-3), "a scale correlates ~1"),
    ("low_autocorrelation", H + "K:C\nAAAA|", None, "one repeated pitch: no correlation is defined"),
    ("motif", H + "K:C\nABcA|AAAA|", 0.5, "the first bar has three distinct notes, the second one"),
    ("repeated_motif", H + "K:C\nABcA|DEFD|EEEE|", 2 / 3, "DEFD repeats ABcA's intervals a fifth lower"),
    ("repeated_motif", H + "K:C\nABcA|ABcB|", 0.0, "two motifs with different shapes"),
    ("preferred_intervals", H + "K:C\nCDEG|", 1.0, "step, step, third"),
    ("preferred_intervals", H + "K:C\nCB|", -1.0, "a major seventh up (C to B)"),
    ("preferred_intervals", H + "K:C\nCF|", 0.0, "a fourth is neither preferred nor penalised"),
    ("leaps_resolved", H + "K:C\nCgfE|", 1.0, "C-g leaps up and g-f steps back: resolved"),
    ("leaps_resolved", H + "K:C\nCgd'|", -1.0, "C-g then g-d' both leap up: a double leap"),
    ("leaps_resolved", H + "K:C\nCg|", None, "a final leap has nothing after it: not counted"),
    ("leaps_resolved", H + "K:C\nCgc'd'|", 0.0, "leap up then a fourth up: neither resolved nor double"),
    ("leaps_resolved", H + "K:C\nCDEF|", None, "no leap: the rule does not apply"),
    ("unique_extremes", H + "K:C\nCDEc|", 1.0, "one lowest (C) and one highest (c)"),
    ("unique_extremes", H + "K:C\nCcCc|", 0.0, "both extremes repeated"),
    ("headers", "X:1\nT:a\nK:D\nABc|", 0.75, "no M:"),
    ("headers", H + "K:D\nABc|", 1.0, "everything required, L: given too"),
    ("headers", "X:1\nT:a\nM:6/8\nK:D\nABc|", 1.0, "L: may be implied by M:"),
    ("clean_scan", H + "K:C\nABcd|", 1.0, "nothing wrong"),
    ("clean_scan", "X:1\nT:a\nM:4/4\nK:C\n]]]] zz(((", 1 / 6, "four stray ] and unclosed slurs"),
    ("bar_durations", H + "K:C\nABcd efga|ABc|ABcd efga|ABcd efga|", 0.75, "the second bar is short"),
    ("bar_durations", H + "K:C\nA|ABcd efga|ABcd efga|efg|]", 1.0, "a pickup and a short last bar are fine"),
    ("bar_durations", H + "K:C\nABcd efga|ABcd efga a|ABcd efga|", 2 / 3, "a bar too long is never fine"),
    ("bar_durations", "X:1\nT:t\nM:6/8\nL:1/8\nK:D\nA>BA ABc|d3 d3|c>BA B2A|", 1.0, "broken rhythm adds up"),
    ("bar_durations", "X:1\nT:t\nM:2/4\nL:1/8\nK:D\n(3ABc d2|(3ABc d2|e4|", 1.0, "a triplet takes two eighths"),
    ("bar_durations", "X:1\nT:t\nM:none\nL:1/8\nK:D\nABc|dcBA|G|", None, "free meter: does not apply"),
    ("balanced", H + "K:C\n|:ABc|", 0.75, "a repeat start never closed"),
    ("balanced", H + "K:C\n|:ABcd:|efga:|", 1.0, "a second part repeated from its start is usual"),
    ("balanced", H + "K:C\nABc d:|ef|", 1.0, "the first :| may repeat from the beginning"),
    ("balanced", H + "K:C\n[CEG ABc|", 0.75, "a chord never closed"),
    ("enough_bars", H + "K:C\nAB|cd|ef|ga|", 0.5, "four bars of the eight of a strain"),
    ("enough_bars", H + "K:C\n" + "ABcd|" * 10, 1.0, "ten bars: capped at 1"),
    ("valid", H + "K:C\nABcd efga|", 1.0, "a clean tune"),
    ("valid", "X:1\nT:a\nK:C\nABcd efga|", 0.0, "no M:"),
]


@pytest.mark.parametrize("name,tune,expected,comment", CASES, ids=[f"{c[0]}: {c[3]}" for c in CASES])
def test_reward_table(name, tune, expected, comment):
    assert score(name, [tune]) == [expected]


def test_autocorrelation_equals_numpy():
    import numpy as np

    from rlmusic.melody import autocorrelation

    pitches = [60, 67, 64, 72, 62, 69, 65, 74, 60, 62]
    for lag in (1, 2, 3):
        expected = np.corrcoef(pitches[:-lag], pitches[lag:])[0, 1]
        assert autocorrelation(pitches, lag) == pytest.approx(expected)


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) not installed")
def test_abc2midi_reward():
    clean, broken = H + "K:C\nABcd efga|", H + "K:C\nABcd ]]]] efga|"
    good, bad = score("abc2midi", [clean, broken])
    assert good == 1.0 and bad < 1.0


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) not installed")
@pytest.mark.parametrize("tune,expected,comment", [
    (H + "K:C\nABcd efga|", 1.0, "abc2midi reads it without an error"),
    (H + "K:C\nABcd ]]]] efga|", 0.0, "one error: rejected outright, as the validity check rejects it"),
    (H + "K:C\nABcd ]]]] efga|AB]]cd|", 0.0, "several errors: the same 0, not less"),
    (H + "K:C\nA4- z4|", 0.0, "a tie to a rest: abc2midi cannot find the note to be tied"),
])
def test_abc2midi_clean_is_the_validity_check(tune, expected, comment):
    from rlmusic import validity

    assert score("abc2midi_clean", [tune]) == [expected]
    assert (expected == 1.0) == (validity.abc2midi_errors([tune]) == [[]])


@pytest.mark.parametrize("name", ["abc2midi", "abc2midi_clean"])
def test_abc2midi_rewards_score_nothing_without_abc2midi(monkeypatch, name):
    from rlmusic import validity

    monkeypatch.setattr(validity, "abc2midi_path", lambda: None)
    assert score(name, [H + "K:C\nABcd efga|"]) == [None]


def test_scans_passed_in_are_used():
    tunes = [H + "K:G\nGABc d2f2|", H + "K:C\nC^CDE|"]
    assert score("in_key", tunes, scans=scan_all(tunes)) == score("in_key", tunes) == [1.0, 0.75]


def test_in_key_per_note_credit_lands_at_the_note():
    tune = H + "K:C\nC^CDE|"
    (credits,) = get("in_key").fn.per_note([tune])
    assert credits == [(tune.index("^C") + 2, -1.0)]


@pytest.fixture(autouse=True)
def fresh_entry_points():
    """Installed plugins are read once per process; these tests install and remove them."""
    refresh()
    yield
    refresh()


def test_every_builtin_has_a_docstring_with_an_example_and_is_picklable():
    for name, info in available().items():
        assert info.source == "built-in"
        assert "Example" in (info.fn.__doc__ or ""), name
        assert pickle.loads(pickle.dumps(info.fn)) is info.fn


def test_unknown_reward_lists_the_valid_names():
    with pytest.raises(UserError) as err:
        get("in_kee")
    assert "unknown reward 'in_kee'" in str(err.value) and "in_key" in str(err.value)


def test_reward_by_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "my_rules.py").write_text(
        "def long_tunes(tunes, **context):\n    return [min(1.0, len(t) / 100) for t in tunes]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert score("my_rules:long_tunes", ["x" * 50]) == [0.5]
    assert get("my_rules:long_tunes").source == "path my_rules:long_tunes"
    with pytest.raises(UserError, match="my_rules has no nope"):
        get("my_rules:nope")


def test_numpy_scores_are_numbers(tmp_path, monkeypatch):
    (tmp_path / "np_rules.py").write_text("import numpy as np\n"
                                          "def rule(tunes, **context):\n    return np.full(len(tunes), 0.5, np.float32)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert score("np_rules:rule", ["a", "b"]) == [0.5, 0.5]


@pytest.mark.parametrize("name,source,message", [
    # a module that does not parse: the error names the module and keeps the SyntaxError as the cause
    ("broken_syntax:rule", "def rule(tunes:\n", "cannot import broken_syntax (SyntaxError"),
    # a module that raises while it is imported
    ("raises_on_import:rule", "raise RuntimeError('no config')\n", "cannot import raises_on_import (RuntimeError: no config)"),
    # malformed dotted paths
    (":f", None, "expected package.module:function"),
    ("mod:", None, "expected package.module:function"),
    ("a b:c", None, "expected package.module:function"),
])
def test_plugins_that_cannot_be_loaded_are_named(tmp_path, monkeypatch, name, source, message):
    if source is not None:
        (tmp_path / f"{name.split(':')[0]}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match=re.escape(message)) as err:
        get(name)
    if source is not None:
        assert err.value.__cause__ is not None  # --traceback shows the plugin's own error


@pytest.mark.parametrize("body,message", [
    # the plugin's own exception, named
    ("raise ValueError('bad tune')", "reward bad_rules:rule (path bad_rules:rule) raised ValueError: bad tune"),
    # NaN and inf are not scores (None is how a rule says it does not apply)
    ("return [float('nan')] * len(tunes)", "returned nan"),
    ("return [float('inf'), 1.0]", "returned inf; scores must be finite"),
    # the wrong number of scores
    ("return [1.0]", "returned 1 scores for 2 tunes"),
    # a string is not a list of scores (it used to be counted as 4 scores)
    ("return 'good'", "returned str 'good'; expected a list of 2 numbers"),
    ("return {'a': 1}", "returned dict"),
    ("return ['x', 1.0]", "returned 'x'; scores must be numbers or None"),
])
def test_failing_plugin_is_named(tmp_path, monkeypatch, body, message):
    (tmp_path / "bad_rules.py").write_text(f"def rule(tunes, **context):\n    {body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("bad_rules", None)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score("bad_rules:rule", ["X:1\nK:C\nC|", "X:1\nK:C\nD|"])


def test_entry_point_plugin_from_an_installed_distribution(tmp_path, monkeypatch):
    """A real distribution with an entry point in the group `rlmusic.rewards`, installed into a temp dir."""
    site = tmp_path / "site"
    pkg = site / "tune_rules"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        'def ends_with_bar(tunes, **context):\n    """1.0 when the tune ends with a bar line."""\n'
        "    return [float(t.rstrip().endswith('|')) for t in tunes]\n")
    dist = site / "tune_rules-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tune-rules\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlmusic.rewards]\nends_with_bar = tune_rules:ends_with_bar\n")
    monkeypatch.syspath_prepend(str(site))
    info = get("ends_with_bar")
    assert info.source == "entry point (tune-rules)" and info.summary == "1.0 when the tune ends with a bar line."
    assert score("ends_with_bar", ["X:1\nK:C\nCDE|", "X:1\nK:C\nCDE"]) == [1.0, 0.0]


def test_entry_point_clashing_with_a_builtin_is_an_error(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "clash-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlmusic.rewards]\nin_key = os:getcwd\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(UserError, match="reward plugin 'in_key' from clash clashes with a built-in reward"):
        available()


def test_scores_are_finite_on_corpus_tunes(data_dir):
    from rlmusic.corpus import load_corpus

    tunes = load_corpus([str(data_dir)]).tunes
    scans = scan_all(tunes)
    for name in set(available()) - {"preference"}:  # needs a reward model: tests/test_preference.py
        for v in score(name, tunes, scans=scans):
            assert v is None or math.isfinite(v)


def test_the_example_plugin_installs_and_is_found_by_name(tmp_path):
    """The README's worked example: pip-install examples/reward_plugin into a temporary target, then the
    reward is listed by `rewards` and usable by name in `evaluate`."""
    import os
    import subprocess

    from conftest import DATA, REPO

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO / "examples" / "reward_plugin")], check=True,
                   capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    listed = subprocess.run([sys.executable, "-m", "rlmusic", "rewards"], capture_output=True, text=True, env=env)
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("long_final_note"))
    assert "entry point (rlmusic-ending-rules)" in line and "at least a quarter note" in line
    ev = subprocess.run([sys.executable, "-m", "rlmusic", "evaluate", "--data", str(DATA), "--rewards",
                         "long_final_note"], capture_output=True, text=True, env=env)
    assert ev.returncode == 0, ev.stderr
    row = next(ln for ln in ev.stdout.splitlines() if ln.startswith("| rewards/long_final_note"))
    assert float(row.split("|")[2]) > 0.5


DENSE_CASES = [
    # (comment, reward, tune, expected (offset, credit) pairs; offsets point into the tune text)
    ("a clean tune: no credit", "valid", H + "K:C\nABcd efga|", []),
    ("stray ] : at the character", "valid", H + "K:C\nAB]cd|", [(len(H) + 4 + 2, -1.0)]),
    ("only the first problem counts", "valid", H + "K:C\nA]B]|", [(len(H) + 4 + 1, -1.0)]),
    ("a missing K: header: where the music would begin", "valid", "X:1\nT:t\nM:4/4\nABc|", [(14, -1.0)]),
    ("one long bar of four: -1/4 at its bar line", "bar_durations",
     H + "K:C\nABcd efga|ABcd efgab|ABcd efga|ABcd efga|", [(len(H) + 4 + 20, -0.25)]),
    ("a short first bar is a pickup, not an error", "bar_durations", H + "K:C\nA|ABcd efga|ABcd efga|c8|", []),
]


@pytest.mark.parametrize("comment,name,tune,expected", DENSE_CASES, ids=[c[0] for c in DENSE_CASES])
def test_dense_forms_place_credit_where_the_error_is(comment, name, tune, expected):
    assert get(name).fn.per_note([tune]) == [expected]


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) not installed")
def test_abc2midi_dense_credit_points_at_its_error():
    tune = H + "K:C\nABcd efga|AB]]cd efga|"
    ((at, credit),) = get("abc2midi").fn.per_note([tune])[0]
    assert credit == -1.0 and tune[at] == "]"
