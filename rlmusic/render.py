"""Turn sampled tunes into files a person can hear and read.

    abc   always: one `tune_NNN.abc` per tune
    mid   abc2midi when installed (Debian `abcmidi`), else music21
    wav   abc2midi + timidity (Debian `timidity`); when either is missing, say so once and skip WAV
    svg   sheet music from verovio, the page trimmed to the music
    html  `index.html`: an offline gallery of the batch (title, sheet music, audio player, ABC text, validity)

Every file is written under a temporary name and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import errno
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from rlmusic.errors import UserError
from rlmusic.files import atomic_write_bytes, atomic_write_text

FORMATS = ("abc", "mid", "wav", "svg", "html")


def check_formats(formats: list[str]) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"--formats: unknown format {', '.join(unknown)} (valid: {', '.join(FORMATS)})")
    if not formats:
        raise UserError(f"--formats: no format given (valid: {', '.join(FORMATS)})")


def tune_title(text: str) -> str:
    m = re.search(r"^T:(.*)$", text, flags=re.M)
    return (m.group(1).strip() if m else "") or "Untitled"


def midi_bytes(text: str) -> bytes | None:
    """MIDI for one tune, or None when neither abc2midi nor music21 can read it."""
    exe = shutil.which("abc2midi")
    if exe:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "t.abc", Path(tmp) / "t.mid"
            src.write_text(text + "\n", encoding="utf-8")
            # cwd: abc2midi writes a barloc.txt beside wherever it runs
            subprocess.run([exe, str(src), "-o", str(dst), "-quiet", "-silent"], capture_output=True, timeout=60,
                           cwd=tmp)
            return dst.read_bytes() if dst.exists() and dst.stat().st_size > 0 else None
    try:
        from music21 import converter

        with tempfile.TemporaryDirectory() as tmp:
            path = converter.parseData(text, format="abc").write("midi", fp=Path(tmp) / "t.mid")
            return Path(path).read_bytes()
    except Exception:  # noqa: BLE001 - music21 raises many types on malformed ABC
        return None


def wav_from_midi(midi: Path, wav: Path) -> bool:
    """Render `midi` to `wav` with timidity (False when it is not installed or renders nothing). A WAV that
    timidity could not finish (a full disk: it still exits 0) is an OSError naming `wav`, and no file is left."""
    exe = shutil.which("timidity")
    if not exe:
        return False
    tmp = wav.with_name(f".{wav.name}.tmp.wav")
    proc = subprocess.run([exe, "-Ow", "-o", str(tmp), str(midi)], capture_output=True, text=True, timeout=120)
    size = tmp.stat().st_size if tmp.exists() else 0
    if size > 44 and _complete_wav(tmp, size):  # more than a bare WAV header, and all the header promises
        os.replace(tmp, wav)
        return True
    tmp.unlink(missing_ok=True)
    said = [ln.split(": ", 1)[-1] for ln in (proc.stdout + proc.stderr).splitlines() if str(tmp) in ln]
    if size > 44 or said:  # it began writing and could not finish
        raise OSError(errno.EIO, said[-1] if said else "timidity wrote a cut WAV file", str(wav))
    return False


def _complete_wav(path: Path, size: int) -> bool:
    """The RIFF header's length is the file's: timidity fills it in last, so a cut file shows it."""
    with open(path, "rb") as f:
        head = f.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE" and struct.unpack("<I", head[4:8])[0] + 8 == size


def write_svgs(items: list[tuple[str, Path]]) -> dict[int, str]:
    """Engrave each (abc text, svg path) in a child process (see rlmusic._svgworker); a tune that crashes
    verovio gets no SVG and the next tunes go on in a fresh process. Returns, for each tune without an SVG, why."""
    start, failed = 0, {}
    while start < len(items):
        payload = json.dumps([[t, str(p)] for t, p in items[start:]])
        proc = subprocess.run([sys.executable, "-m", "rlmusic._svgworker"], input=payload, capture_output=True,
                              text=True, timeout=60 + 10 * len(items))
        last = -1
        for line in proc.stdout.splitlines():
            word, _, rest = line.partition(" ")
            index, _, reason = rest.partition(" ")
            if word in ("done", "fail"):
                last = int(index)
            if word == "fail":
                failed[start + last] = reason
        if proc.returncode == 0:
            return failed
        failed[start + last + 1] = "verovio crashed on it"
        start += last + 2  # skip the tune that crashed it
    return failed


def write_outputs(tunes, out: Path, formats: list[str], log=print, checker: str = "auto") -> str:
    """Write every tune in every format; returns the summary line. `checker` is the validity check
    (rlmusic.validity.resolve_checker): the headers plus abc2midi, or the scanner's problems."""
    from rlmusic import validity

    check_formats(formats)
    checker = validity.resolve_checker(checker)
    try:
        return _write_outputs(tunes, out, formats, log, checker)
    except OSError as exc:  # a full disk, a read-only folder: named, not a traceback
        raise UserError(f"{exc.filename or out}: cannot write ({exc.strerror or exc})") from exc


def _write_outputs(tunes, out: Path, formats: list[str], log, checker: str) -> str:
    from rlmusic import validity

    out.mkdir(parents=True, exist_ok=True)
    stems = [f"tune_{i:03d}" for i in range(1, len(tunes) + 1)]
    problems = validity.check_tunes([t.text for t in tunes], checker == "abc2midi")
    notes: list[str] = []
    want_wav = "wav" in formats
    if want_wav and not (shutil.which("abc2midi") and shutil.which("timidity")):
        missing = [t for t in ("abc2midi", "timidity") if not shutil.which(t)]
        notes.append(f"WAV skipped: {' and '.join(missing)} not installed (Debian packages abcmidi, timidity)")
        log(notes[-1])
        want_wav = False
    # Files an earlier run left in this folder must not pass for this run's: its tunes beyond this run's number
    # go too, so the folder holds one batch.
    for old in out.glob("tune_[0-9][0-9][0-9]*.*"):
        if old.suffix in (".abc", ".mid", ".wav", ".svg"):
            old.unlink(missing_ok=True)
    for tune, stem in zip(tunes, stems):
        atomic_write_text(out / f"{stem}.abc", tune.text + "\n")
        if "mid" in formats or want_wav:
            midi = midi_bytes(tune.text)
            if midi is not None:
                atomic_write_bytes(out / f"{stem}.mid", midi)
                if want_wav:
                    wav_from_midi(out / f"{stem}.mid", out / f"{stem}.wav")
                if "mid" not in formats:
                    (out / f"{stem}.mid").unlink()
    no_svg: dict[int, str] = {}
    if "svg" in formats or "html" in formats:
        no_svg = write_svgs([(tune.text, out / f"{stem}.svg") for tune, stem in zip(tunes, stems)])
        unwritable = [r for r in no_svg.values() if r.startswith("cannot write")]
        if unwritable:
            raise UserError(unwritable[0])
        if no_svg:
            reasons = Counter(no_svg.values())
            notes.append(f"{len(no_svg)} without sheet music (" + ", ".join(f"{n}: {r}" for r, n in reasons.items())
                         + ")")
    if "html" in formats:
        atomic_write_text(out / "index.html", gallery_html(tunes, stems, problems, out, no_svg))
    made = {f: 1 if f == "html" else sum((out / f"{stem}.{f}").exists() for stem in stems) for f in formats}
    valid = sum(not p for p in problems)
    limit = sum(t.hit_limit for t in tunes)
    counts = ", ".join(f"{n} {f}" for f, n in made.items())
    return "; ".join([f"wrote {len(tunes)} tunes to {out} ({counts})", f"{valid} valid ({checker} check)",
                      f"{limit} hit the length limit", *notes])


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rlmusic: {count} tunes</title>
<style>
body {{ font-family: Georgia, serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; }}
article {{ border-top: 1px solid #ccc; padding: 1em 0; }}
h2 {{ margin: 0 0 .3em; font-size: 1.3em; }}
.valid {{ color: #1a7f37; }} .invalid {{ color: #b42318; }}
img.score {{ width: 100%; background: #fff; }}
pre {{ background: #f6f6f3; padding: .8em; overflow-x: auto; font-size: .9em; }}
#status {{ color: #555; }}
</style>
</head>
<body>
<h1>{count} tunes</h1>
<p id="status">{valid} of {count} valid ABC.</p>
{articles}
<script>
// Count the scores the browser actually drew, so a reader (or a test) sees at once whether all rendered.
window.addEventListener("load", function () {{
  var scores = document.querySelectorAll("img.score");
  var drawn = Array.prototype.filter.call(scores, function (img) {{ return img.complete && img.naturalWidth > 0; }});
  document.body.dataset.scoresDrawn = drawn.length;
  document.body.dataset.scores = scores.length;
}});
</script>
</body>
</html>
"""


def gallery_html(tunes, stems: list[str], problems: list[list[str]], out: Path,
                 no_svg: dict[int, str] | None = None) -> str:
    """The gallery page. Every piece of tune text is escaped: a title may hold `<script>`."""
    no_svg = no_svg or {}
    articles = [tune_card(tune, stem, out, probs, no_svg.get(i))
                for i, (tune, stem, probs) in enumerate(zip(tunes, stems, problems))]
    valid = sum(not p for p in problems)
    return _PAGE.format(count=len(tunes), valid=valid, articles="\n".join(articles))


def tune_card(tune, stem: str, folder: Path, problems: list[str] | None = None, why_no_svg: str | None = None,
              prefix: str = "") -> str:
    """One tune's <article>: title, validity (when `problems` is given), sheet music or why there is none, audio,
    the ABC text. Files are looked for in `folder` and linked as `prefix` + name."""
    esc = html.escape
    anchor = f"{prefix.strip('/')}-{stem}" if prefix else stem
    parts = [f'<article id="{esc(anchor)}">', f"<h2>{esc(tune_title(tune.text))}</h2>"]
    if problems:
        parts.append(f'<p class="invalid">Invalid: {esc("; ".join(problems[:3]))}</p>')
    elif problems is not None:
        parts.append('<p class="valid">Valid ABC.</p>')
    if tune.hit_limit:
        parts.append("<p>Stopped at the length limit.</p>")
    if (folder / f"{stem}.svg").exists():
        parts.append(f'<img class="score" src="{prefix}{stem}.svg" alt="Sheet music of {esc(stem)}">')
    else:
        parts.append(f"<p>No sheet music: {esc(why_no_svg or 'the notation could not be engraved')}.</p>")
    if (folder / f"{stem}.wav").exists():
        parts.append(f'<audio controls preload="none" src="{prefix}{stem}.wav"></audio>')
    parts.append(f'<pre>{esc(tune.text)}</pre>')
    parts.append(f'<p><a href="{prefix}{stem}.abc">{stem}.abc</a></p></article>')
    return "\n".join(parts)
