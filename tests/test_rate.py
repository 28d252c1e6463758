"""The rating page (rlmusic/rate.py): choices written atomically and resumed, and the page driven in the system's
Chromium through Playwright, as a listener uses it (a click, a key, a reload)."""

import shutil
import threading

import pytest

from rlmusic.errors import UserError
from rlmusic.rate import Ratings, make_server, read_preferences, render_pairs
from rlmusic.sample import Tune

TUNES = [f"X:1\nT:Tune {i}\nM:2/4\nL:1/8\nK:G\n{body}|" for i, body in enumerate(
    ["GABc dBAG|", "dcBA GFED|", "G2B2 d2g2|", "gfed cBAG|", "ABcd efga|", "B2A2 G4|"])]


def tune(text: str) -> Tune:
    return Tune(text=text, hit_limit=False)


@pytest.fixture
def folder(tmp_path):
    """A rating folder of 3 pairs of hand-written tunes, rendered as `rate` renders a model's."""
    pairs = [(TUNES[2 * i], TUNES[2 * i + 1]) for i in range(3)]
    render_pairs(tmp_path, [(tune(a), tune(b)) for a, b in pairs], 0, log=lambda m: None)
    Ratings(tmp_path, model="hand-written").add_pairs(pairs)
    return tmp_path


def test_a_choice_is_stored_with_the_tunes_and_a_re_read_resumes(folder):
    ratings = Ratings(folder, model="m")
    assert ratings.next_pair() == 0
    ratings.record(0, "b")
    ratings.record(1, "none")
    again = Ratings(folder)
    assert again.next_pair() == 2
    first = again.choices[0]
    assert (first["pair"], first["choice"], first["a"], first["b"], first["model"]) == (0, "b", TUNES[0], TUNES[1], "m")
    again.record(0, "a")  # changing one's mind replaces the earlier choice
    assert [(c["pair"], c["choice"]) for c in Ratings(folder).choices] == [(1, "none"), (0, "a")]
    assert not list(folder.glob("*.tmp*"))  # written under a temporary name, renamed into place


@pytest.mark.parametrize("pair,choice", [
    (0, "left"),  # not one of a, b, none
    (3, "a"),     # only 3 pairs: 0..2
    (-1, "a"),
])
def test_a_bad_choice_is_refused(folder, pair, choice):
    with pytest.raises(UserError):
        Ratings(folder).record(pair, choice)


@pytest.mark.parametrize("line", [
    "not json",                                   # not JSON at all
    '{"a": "X:1", "b": "X:2"}',                   # no choice
    '{"a": "X:1", "b": "X:2", "choice": "c"}',    # a choice that is not a, b or none
    '["X:1", "X:2", "a"]',                        # not an object
])
def test_a_bad_line_in_preferences_is_an_error_naming_the_line(tmp_path, line):
    path = tmp_path / "preferences.jsonl"
    path.write_text('{"a": "X:1", "b": "X:2", "choice": "a"}\n' + line + "\n")
    with pytest.raises(UserError, match="line 2"):
        read_preferences(path)


def serve(ratings):
    server = make_server(ratings, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_the_server_listens_on_localhost_only_and_serves_only_the_tunes_files(folder):
    import urllib.error
    import urllib.request

    server, url = serve(Ratings(folder))
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert urllib.request.urlopen(url + "tunes/pair_0000_a.abc").read().decode() == TUNES[0] + "\n"
        for path in ("tunes/../pairs.json", "tunes/pairs.json", "pairs.json", "tunes/%2e%2e/pairs.json"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url + path)
            assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_a_listener_clicks_presses_a_key_and_reloads(folder):
    sync_api = pytest.importorskip("playwright.sync_api")
    ratings = Ratings(folder)
    server, url = serve(ratings)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            assert page.get_attribute("#progress", "data-rated") == "0"
            assert page.locator("article").count() == 2
            # both scores drawn (verovio's SVGs), and each tune has its audio player where timidity exists
            page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            assert page.locator("img.score").count() == 2
            if shutil.which("abc2midi") and shutil.which("timidity"):
                assert page.locator("audio").count() == 2
            page.click("text=Left is better")
            page.wait_for_selector('#progress[data-rated="1"]')
            assert [(c["pair"], c["choice"]) for c in read_preferences(folder / "preferences.jsonl")] == [(0, "a")]
            page.keyboard.press("2")  # the right tune, by key
            page.wait_for_selector('#progress[data-rated="2"]')
            page.reload()  # a reload shows the next pair and posts nothing again
            assert page.get_attribute(".pair", "data-pair") == "2"
            choices = read_preferences(folder / "preferences.jsonl")
            assert [(c["pair"], c["choice"]) for c in choices] == [(0, "a"), (1, "b")]
            assert choices[1]["a"] == TUNES[2] and choices[1]["b"] == TUNES[3]
            page.keyboard.press("0")
            page.wait_for_selector("#done")
            assert errors == []
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert Ratings(folder).next_pair() is None


def test_the_rate_command_draws_serves_and_ends_on_ctrl_c(tmp_path):
    """`rlmusic rate` as a listener starts it: the tunes drawn from a run, the page served at the address it
    prints, Ctrl-C ends it with exit 0 and the count of choices; a second start resumes the same pairs."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import REPO, make_toy_run

    toy = make_toy_run(tmp_path / "toy")
    out = tmp_path / "taste"

    def start():
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "rlmusic", "rate", "--checkpoint", str(toy), "--out", str(out),
                                 "--pairs", "2", "--port", "0", "--max-length", "40"],
                                stderr=subprocess.PIPE, text=True, env=env)
        deadline, line = time.monotonic() + 240, ""
        while "http://" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "rate ended before serving"
        return proc, re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)

    proc, url = start()
    page = urllib.request.urlopen(url).read().decode()
    assert 'data-rated="0" data-total="2"' in page
    urllib.request.urlopen(url + "choice", data=b"pair=0&choice=b")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "1 choices in" in err and "Traceback" not in err
    pairs = json.loads((out / "pairs.json").read_text())
    proc, url = start()  # resumed: the same pairs, the next one shown
    assert 'data-pair="1"' in urllib.request.urlopen(url).read().decode()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert json.loads((out / "pairs.json").read_text()) == pairs
