"""The documentation site: `mkdocs build --strict` (a broken link or a missing API object fails), then every page
opened in headless Chromium over HTTP, as a reader would: it loads, logs nothing to the console, draws every image."""

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO
from test_render import CHROMIUM, dump_dom


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={"NO_MKDOCS_2_WARNING": "1",
                                                                             "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def pages(site: Path) -> list[Path]:
    """Every page of the site (the results folder's own files and the 404 page aside)."""
    return sorted(p for p in site.rglob("index.html") if "results" not in p.parts and "search" not in p.parts)


def test_the_site_has_every_page_of_the_nav(site):
    names = {str(p.parent.relative_to(site)) for p in pages(site)}
    for page in ("getting-started", "pretraining", "grammar", "rewards", "finetuning", "measurements", "design",
                 "tutorials/reward-plugin", "reference/rewards", "reference/environment", "model-card"):
        assert page in names
    api = (site / "reference" / "rewards" / "index.html").read_text()
    assert "RewardMix" in api and "register" in api  # mkdocstrings found the objects and their docstrings


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_every_page_in_a_real_browser(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for page in pages(site):
            url = f"http://127.0.0.1:{server.server_address[1]}/{page.relative_to(site).as_posix()}"
            dom, console = dump_dom(page, url=url)
            assert console == [], (url, console)
            body = re.search(r"<body([^>]*)>", dom).group(1)
            images = re.search(r'data-images="(\d+)"', body)
            assert images, (url, body)  # the page's scripts ran
            assert f'data-images-drawn="{images.group(1)}"' in body, (url, body)
    finally:
        server.shutdown()
