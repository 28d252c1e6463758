"""Outputs a person hears and reads: MIDI, WAV, SVG and the HTML gallery, checked in a real browser."""

import re
import shutil
import subprocess

import pytest

from rlmusic.render import gallery_html, write_outputs
from rlmusic.sample import Tune

GOOD = "X:1\nT:Good Reel\nM:4/4\nL:1/8\nK:D\n|:A2FA DAFA|B2GB dBGB|A2FA DAFA|BAGF E2D2:|"
HOSTILE = "X:1\nT:<script>alert('x')</script> & <b>bold</b>\nM:6/8\nL:1/8\nK:G\nGAB cde|d3 B3|]"
JUNK = "X:1\nT:Junk\nM:4/4\nL:1/8\nK:C\n]]]] zz((( |||"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_gallery_escapes_tune_text(tmp_path):
    page = gallery_html([Tune(HOSTILE, False)], ["tune_001"], [[]], tmp_path)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # the page's own status script, nothing from the tune


def test_abc_and_svg_and_summary(tmp_path):
    summary = write_outputs([Tune(GOOD, False), Tune(HOSTILE, True)], tmp_path, ["abc", "svg"])
    assert (tmp_path / "tune_001.abc").read_text() == GOOD + "\n"
    svg = (tmp_path / "tune_001.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<g class=\"note") >= 16
    assert "<script" not in (tmp_path / "tune_002.svg").read_text()
    assert "wrote 2 tunes" in summary and "1 hit the length limit" in summary
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_junk_that_crashes_the_engraver_does_not_stop_the_batch(tmp_path):
    tunes = [Tune(JUNK, False), Tune(GOOD, False)]
    summary = write_outputs(tunes, tmp_path, ["abc", "svg", "html"])
    assert (tmp_path / "tune_002.svg").exists()
    # the tune without sheet music is counted, with the reason, in the summary and on its gallery card
    assert re.search(r"1 without sheet music \(1: verovio (crashed on it|could not read the ABC)\)", summary), summary
    card = (tmp_path / "index.html").read_text().split('id="tune_001"')[1].split("</article>")[0]
    assert re.search(r"No sheet music: verovio (crashed on it|could not read the ABC)", card)


def test_a_smaller_batch_in_the_same_folder_leaves_no_tunes_of_the_last(tmp_path):
    write_outputs([Tune(GOOD, False)] * 3, tmp_path, ["abc"])
    write_outputs([Tune(GOOD, False)], tmp_path, ["abc"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tune_001.abc"]


def test_the_summary_names_the_validity_check(tmp_path):
    assert "1 valid (scanner check)" in write_outputs([Tune(GOOD, False)], tmp_path, ["abc"], checker="scanner")


def test_a_full_disk_is_an_error_naming_the_file(tmp_path, monkeypatch):
    import errno

    from rlmusic import render
    from rlmusic.errors import UserError

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(render, "atomic_write_text", full)
    with pytest.raises(UserError, match=r"tune_001.abc: cannot write \(No space left on device\)"):
        write_outputs([Tune(GOOD, False)], tmp_path, ["abc"])


def test_files_of_an_earlier_run_in_the_folder_are_not_reused(tmp_path):
    write_outputs([Tune(GOOD, False)], tmp_path, ["abc", "svg"])
    summary = write_outputs([Tune(JUNK, False)], tmp_path, ["abc", "svg"])  # same stem, no score this time
    assert not (tmp_path / "tune_001.svg").exists() and "(1 abc, 0 svg)" in summary


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi (Debian abcmidi) not installed")
def test_midi_from_abc2midi(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    write_outputs([Tune(GOOD, False)], tmp_path / "out", ["abc", "mid"])
    assert list(cwd.iterdir()) == []  # abc2midi's barloc.txt does not land in the user's folder
    data = (tmp_path / "out" / "tune_001.mid").read_bytes()
    assert data[:4] == b"MThd" and data.count(b"MTrk") >= 1


def test_wav_missing_tools_are_reported_not_fatal(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "timidity" else real_which(name))
    logged = []
    summary = write_outputs([Tune(GOOD, False)], tmp_path, ["abc", "wav"], log=logged.append)
    assert "WAV skipped: timidity not installed" in summary
    assert len(logged) == 1 and not list(tmp_path.glob("*.wav"))


@pytest.mark.skipif(not (shutil.which("abc2midi") and shutil.which("timidity")), reason="abc2midi/timidity missing")
def test_wav_from_timidity(tmp_path):
    write_outputs([Tune(GOOD, False)], tmp_path, ["wav"])
    data = (tmp_path / "tune_001.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 44_100  # over a second of audio


def dump_dom(page, url: str | None = None):
    """Load a page (a file, or `url` if given) in headless Chromium; return (the DOM after scripts ran, console
    messages)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={page.parent}/.chr",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url or page.as_uri()],
        capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_gallery_in_a_real_browser(tmp_path):
    tunes = [Tune(GOOD, False), Tune(HOSTILE, False), Tune(GOOD.replace("Good Reel", "Another"), True)]
    write_outputs(tunes, tmp_path, ["abc", "svg", "html"])
    dom, console = dump_dom(tmp_path / "index.html")
    assert console == []
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-scores="3"' in body and 'data-scores-drawn="3"' in body  # every tune's notation was drawn
    assert dom.count("<script") == 1  # the hostile title did not become an element
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in dom
    assert dom.count("<article") == 3
