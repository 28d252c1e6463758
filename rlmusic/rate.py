"""The rating page: a listener reads and hears two tunes side by side and says which one they prefer.

    python -m rlmusic rate --checkpoint RUN --out DIR [--pairs 20] [--port 8765] [--seed 0]

What lands in DIR:

    pairs.json          the pairs of tunes, drawn once from the model (a re-run with more --pairs draws the rest)
    tunes/              each tune's sheet music (SVG), audio (WAV) and ABC, as the gallery writes them
    preferences.jsonl   one line per choice: {"pair", "a", "b", "choice": "a" | "b" | "none", "model", "time"},
                        the tunes' text stored with the choice; the file is rewritten whole under a temporary
                        name and renamed at each choice, so a crash never leaves half a line

A re-run with the same DIR resumes at the first pair without a choice. The page is served on 127.0.0.1 only,
needs nothing from the network, and answers the keys 1 (left), 2 (right) and 0 (no preference).
`rlmusic reward-model` learns a reward from the file; `agent: dpo` fine-tunes on it directly.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from rlmusic.errors import UserError
from rlmusic.files import atomic_write_text

CHOICES = ("a", "b", "none")
TUNE_FILE = re.compile(r"^pair_\d{4}_[ab]\.(svg|wav|abc)$")  # the only files the page serves
TYPES = {".svg": "image/svg+xml", ".wav": "audio/wav", ".abc": "text/plain; charset=utf-8"}


class Ratings:
    """The pairs of one rating folder and the choices made so far (read back from preferences.jsonl)."""

    def __init__(self, folder: Path, model: str = ""):
        self.folder, self.model = Path(folder), model
        self.lock = threading.Lock()
        self.pairs: list[tuple[str, str]] = []
        if (self.folder / "pairs.json").exists():
            self.pairs = [tuple(p) for p in read_json(self.folder / "pairs.json", "pairs")]
        self.choices: list[dict] = read_preferences(self.folder / "preferences.jsonl")

    @property
    def done(self) -> set[int]:
        return {c["pair"] for c in self.choices}

    def next_pair(self) -> int | None:
        """The first pair without a choice (None: all rated)."""
        return next((i for i in range(len(self.pairs)) if i not in self.done), None)

    def add_pairs(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs += pairs
        atomic_write_text(self.folder / "pairs.json", json.dumps(self.pairs, indent=1))

    def record(self, pair: int, choice: str) -> dict:
        """Store one choice (a second choice for the same pair replaces the first)."""
        if choice not in CHOICES:
            raise UserError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
        if not 0 <= pair < len(self.pairs):
            raise UserError(f"pair {pair} is not among the {len(self.pairs)} pairs of {self.folder}")
        a, b = self.pairs[pair]
        line = {"pair": pair, "a": a, "b": b, "choice": choice, "model": self.model,
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        with self.lock:
            self.choices = [c for c in self.choices if c["pair"] != pair] + [line]
            atomic_write_text(self.folder / "preferences.jsonl",
                              "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in self.choices))
        return line


def read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc})") from exc


def read_preferences(path: Path) -> list[dict]:
    """The choices of a preferences.jsonl (none if it does not exist); a bad line is an error naming it."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            c = json.loads(line)
            ok = isinstance(c, dict) and isinstance(c.get("a"), str) and isinstance(c.get("b"), str) \
                and c.get("choice") in CHOICES
        except ValueError:
            ok = False
        if not ok:
            raise UserError(f"{path}: line {n} is not a choice (a JSON object with the tunes a, b and a choice "
                            f"among {', '.join(CHOICES)})")
        c.setdefault("pair", n - 1)
        out.append(c)
    return out


def draw_pairs(ratings: Ratings, model, vocab, pairs: int, seed: int, log=print, render: bool = True,
               **sampling) -> None:
    """Draw the pairs still missing (2 tunes each) and render them into tunes/ (sheet music, audio, ABC; not with
    `render=False`, for a listener that reads the text)."""
    from rlmusic.sample import Sampler

    missing = pairs - len(ratings.pairs)
    if missing <= 0:
        return
    log(f"drawing {2 * missing} tunes for {missing} pairs")
    # a seed of its own per extension, so the tunes of an extended folder are not the first ones again
    tunes = Sampler(model, vocab).generate(2 * missing, seed=seed + len(ratings.pairs), **sampling)
    first = len(ratings.pairs)
    if render:
        render_pairs(ratings.folder, [(tunes[2 * i], tunes[2 * i + 1]) for i in range(missing)], first, log)
    ratings.add_pairs([(tunes[2 * i].text, tunes[2 * i + 1].text) for i in range(missing)])


def render_pairs(folder: Path, pairs: list, first: int, log=print) -> None:
    """Each pair's two tunes as tunes/pair_NNNN_a.* and _b.* (the gallery's writer, one folder per tune)."""
    import shutil
    import tempfile

    from rlmusic.render import write_outputs

    target = folder / "tunes"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        flat = [t for pair in pairs for t in pair]
        write_outputs(flat, Path(tmp), ["abc", "wav", "svg"], log=log)
        for i, _ in enumerate(flat):
            stem = f"pair_{first + i // 2:04d}_{'ab'[i % 2]}"
            for ext in ("abc", "wav", "svg"):
                made = Path(tmp) / f"tune_{i + 1:03d}.{ext}"
                if made.exists():
                    shutil.move(str(made), target / f"{stem}.{ext}")


# --- the page ----------------------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rlmusic: which tune do you prefer?</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: Georgia, serif; margin: 1.5em auto; max-width: 1300px; padding: 0 1em; color: #222; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1.5em; }}
article {{ border: 1px solid #ccc; border-radius: 6px; padding: .8em; }}
img.score {{ width: 100%; background: #fff; }}
pre {{ background: #f6f6f3; padding: .6em; overflow-x: auto; font-size: .8em; max-height: 12em; }}
form {{ display: flex; gap: 1em; justify-content: center; margin: 1.2em 0; }}
button {{ font-size: 1.1em; padding: .5em 1.2em; cursor: pointer; }}
#progress {{ color: #555; }}
</style>
</head>
<body>
<h1>Which tune do you prefer?</h1>
<p id="progress" data-rated="{rated}" data-total="{total}">{rated} of {total} pairs rated. Keys: 1 left, 2 right,
0 no preference.</p>
{body}
<script>
document.addEventListener("keydown", function (e) {{
  var map = {{"1": "a", "2": "b", "0": "none"}};
  var button = map[e.key] && document.querySelector('button[value="' + map[e.key] + '"]');
  if (button && !e.repeat) {{ button.click(); }}
}});
</script>
</body>
</html>
"""


def tune_article(folder: Path, stem: str, text: str, side: str) -> str:
    esc = html.escape
    parts = [f'<article id="{side}"><h2>{"Left" if side == "a" else "Right"} (key {1 if side == "a" else 2})</h2>']
    if (folder / "tunes" / f"{stem}.svg").exists():
        parts.append(f'<img class="score" src="tunes/{stem}.svg" alt="Sheet music of the {side} tune">')
    else:
        parts.append("<p>No sheet music: verovio could not engrave it.</p>")
    if (folder / "tunes" / f"{stem}.wav").exists():
        parts.append(f'<audio controls preload="none" src="tunes/{stem}.wav"></audio>')
    else:
        parts.append("<p>No audio (abc2midi and timidity make it where they are installed).</p>")
    parts.append(f"<pre>{esc(text)}</pre></article>")
    return "\n".join(parts)


def page(ratings: Ratings) -> str:
    pair = ratings.next_pair()
    if pair is None:
        body = (f"<p id=\"done\">All {len(ratings.pairs)} pairs are rated: the choices are in "
                f"{html.escape(str(ratings.folder / 'preferences.jsonl'))}.</p>")
    else:
        a, b = ratings.pairs[pair]
        body = "\n".join([
            f'<div class="pair" data-pair="{pair}">',
            tune_article(ratings.folder, f"pair_{pair:04d}_a", a, "a"),
            tune_article(ratings.folder, f"pair_{pair:04d}_b", b, "b"), "</div>",
            f'<form method="post" action="/choice"><input type="hidden" name="pair" value="{pair}">',
            '<button name="choice" value="a">Left is better</button>',
            '<button name="choice" value="none">No preference</button>',
            '<button name="choice" value="b">Right is better</button></form>'])
    return _PAGE.format(rated=len(ratings.done & set(range(len(ratings.pairs)))), total=len(ratings.pairs),
                        body=body)


def make_server(ratings: Ratings, port: int = 8765) -> ThreadingHTTPServer:
    """The page's HTTP server, bound to 127.0.0.1 (port 0: any free port; `server.server_address` says which)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the terminal shows the progress line instead
            pass

        def send(self, status, body: bytes, kind: str = "text/html; charset=utf-8", **headers):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/":
                return self.send(HTTPStatus.OK, page(ratings).encode("utf-8"))
            name = path.removeprefix("/tunes/")
            file = ratings.folder / "tunes" / name
            if path.startswith("/tunes/") and TUNE_FILE.match(name) and file.is_file():
                return self.send(HTTPStatus.OK, file.read_bytes(), TYPES[file.suffix])
            self.send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def do_POST(self):
            if self.path != "/choice":
                return self.send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8"))
            try:
                ratings.record(int(form.get("pair", ["-1"])[0]), form.get("choice", [""])[0])
            except (UserError, ValueError) as exc:
                return self.send(HTTPStatus.BAD_REQUEST, f"error: {exc}".encode(), "text/plain")
            self.send(HTTPStatus.SEE_OTHER, b"", Location="/")  # the next pair; a reload does not post again

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
