"""ABC corpora: find the files, split them into tunes, clean each tune, and split train/validation by tune.

The default data are the ABC collections bundled in music21's corpus. User data are `.abc` files, folders of them
and globs, in UTF-8 or Latin-1. Tunes are split on `X:` fields, never on blank lines: a blank line inside a
tune would cut it in two, and text between tunes would be kept as a fragment.
"""

from __future__ import annotations

import glob
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlmusic.errors import UserError

# music21 ships these ABC collections (one folder each inside music21/corpus).
MUSIC21_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong", "miscFolk")
DEFAULT_SOURCES = ("oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong")

# Header fields worth learning: reference, title, rhythm, meter, unit length, tempo, parts, key. The others
# (N: notes, Z: transcriber, B: book, O: origin, S: source, H: history, D:, F:, C:, A:, G:, I:, W:/w: words) are
# free text about the tune, not the tune, and would spend the model's capacity on names and e-mail addresses.
HEADER_FIELDS_KEPT = set("XTRMLQPK")
# Fields that may change mid-tune and change the music when they do.
BODY_FIELDS_KEPT = set("MLQPK")

PROGRESS_BYTES = 20_000_000  # corpora larger than this show a progress bar while they are read
DATA_SUFFIXES = (".abc", ".mid", ".midi")
TUNE_SEPARATOR = "\n\n"  # a blank line ends a tune in ABC; generation stops there too
DEFAULT_PRIMER = "X:1\n"  # every cleaned tune starts so; sampling and RL episodes start from it

_FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
_COMMENT = re.compile(r"(?<!\\)%.*$")
_QUOTED = re.compile(r'"[^"]*"')
_NOTE = re.compile(r"[A-Ga-g]")

# Repairs of transcription slips that abc2midi rejects, each keeping the music (see `repair_body_line`).
# Quoted strings, !decorations! and [X:...] inline fields are left alone; only the music between them is repaired.
_PROTECTED = re.compile(r'("[^"]*"|![^!\n]*!|\[[A-Za-z]:[^\]]*\])')
_CHORD_SYMBOL = re.compile(r'"[A-G][#b]?(?:m|min|maj|dim|aug|sus|add|M|o|\+|-|[0-9])*(?:/[A-G][#b]?)?(?:\([^")]*\))?"')
_QP_ARTIFACT = re.compile(r"=(20|3D)")  # quoted-printable e-mail debris: "=20" is a space, "=3D" is "="
_DECORATION = r"[.~HLMOPSTuv]"
_DECORATION_BEFORE_TUPLET = re.compile(rf"{_DECORATION}+(?=\(+\d)")
_DECORATION_BEFORE_SLUR = re.compile(rf"({_DECORATION}+)(\(+)")
_DECORATION_WITHOUT_NOTE = re.compile(rf"{_DECORATION}+(?=[)|\]:]|\s|$)")
_NOTE_TOKEN = re.compile(r"([_^=]*)([A-Ga-g])([,']*)([0-9]*/*[0-9]*)(-?)")


@dataclass
class CorpusStats:
    """What reading the data found: shown to the user and saved with the run."""

    files: int = 0
    tunes_found: int = 0
    tunes_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    midi_files: int = 0
    midi_converted: int = 0
    midi_dropped: list = field(default_factory=list)
    """(file, reason) for each MIDI file that gave no tune."""

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.dropped.most_common()) or "none"
        text = (f"read {self.files} files: {self.tunes_found} tunes found, {self.tunes_kept} kept, "
                f"{self.tunes_found - self.tunes_kept} dropped ({reasons})")
        if self.midi_files:
            why = Counter(r for _, r in self.midi_dropped)
            text += (f"; MIDI: {self.midi_files} files, {self.midi_converted} converted, {len(self.midi_dropped)} "
                     f"dropped" + (f" ({', '.join(f'{n} {r}' for r, n in why.most_common())}; e.g. "
                                   f"{', '.join(f'{Path(p).name}: {r}' for p, r in self.midi_dropped[:3])})"
                                   if self.midi_dropped else ""))
        return text


def music21_collection_dir(name: str) -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus" / name


def resolve_sources(sources: list[str] | tuple[str, ...]) -> list[Path]:
    """Turn collection names, files, folders and globs into a sorted list of .abc (and .mid/.midi) files.

    A source that matches nothing is an error naming it; a folder is searched recursively for `*.abc`, `*.mid`
    and `*.midi`.
    """
    files: list[Path] = []
    for src in sources:
        if src in MUSIC21_COLLECTIONS:
            found = sorted(music21_collection_dir(src).glob("*.abc"))
        elif any(ch in src for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(src, recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"--data {src}: the pattern matches no file")
        else:
            path = Path(src)
            if path.is_dir():
                found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
                if not found:
                    raise UserError(f"--data {src}: the folder holds no .abc or .mid file")
            elif path.is_file():
                found = [path]
            else:
                raise UserError(f"--data {src}: no such file, folder or music21 collection "
                                f"(collections: {', '.join(MUSIC21_COLLECTIONS)})")
        files.extend(found)
    midi_files = [p for p in files if p.suffix.lower() in (".mid", ".midi")]
    if midi_files:
        from rlmusic.midi import require_midi2abc

        require_midi2abc(midi_files[0])  # before any work: name the package to install
    return files


def read_abc_file(path: Path) -> str:
    """Read one ABC file as text (see `file_lines` for the encoding rules)."""
    return "".join(file_lines(path))


def file_lines(path: Path, progress=None):
    """The lines of one ABC file ("\n"-terminated), read as a stream so that memory stays small however large
    the file: by its byte-order mark (UTF-8/16/32) if it has one, else UTF-8 if the whole file decodes, else
    Latin-1 (the Essen files are Latin-1). `progress(n)` is told the characters read as they go."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if not head.strip():
        raise UserError(f"{path}: the file is empty")
    encoding = next((enc for mark, enc in _BOMS if head.startswith(mark)), None)
    if encoding is None:
        if b"\x00" in head or _control_share(head) > 0.05:
            raise UserError(f"{path}: this is a binary file, not ABC text")
        encoding = "utf-8" if _decodes(path, "utf-8") else "latin-1"
    try:
        with open(path, "r", encoding=encoding, newline=None) as f:
            for i, line in enumerate(f):
                if progress is not None:
                    progress(len(line))
                yield line.lstrip("\ufeff") if i == 0 else line
    except UnicodeDecodeError:
        raise UserError(f"{path}: starts as {encoding} text but does not decode as it") from None


def _decodes(path: Path, encoding: str) -> bool:
    """Whether the whole file decodes in `encoding`, read in chunks (nothing kept)."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _control_share(data: bytes) -> float:
    sample = data[:65536]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return controls / len(sample)


def split_tunes(text: str) -> list[str]:
    """Split a file's text into raw tunes, each starting at an `X:` line. Text before the first X: is dropped."""
    return list(iter_tunes(text.split("\n")))


def iter_tunes(lines, max_chars: int | None = None):
    """Raw tunes from an iterable of lines (with or without their newlines), one at a time. With `max_chars`,
    a tune whose raw text grows longer than that comes as None, and its lines are not kept (a huge junk file
    with one X: line must not fill the memory)."""
    tune: list[str] | None = None
    size, too_long = 0, False

    def done():
        return None if too_long else "\n".join(tune)

    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("X:"):
            if tune is not None:
                yield done()
            tune, size, too_long = [line], len(line), False
        elif tune is not None and not too_long:
            tune.append(line)
            size += len(line) + 1
            if max_chars is not None and size > 4 * max_chars:  # raw text (comments, free text) runs longer
                tune, too_long = [], True
    if tune is not None:
        yield done()


def clean_tune(raw: str) -> tuple[str | None, str]:
    """Clean one raw tune. Returns (tune, "") or (None, reason it was dropped).

    Comments, `%%` directives, `I:` lines and free-text fields go; fingerings and text annotations in quotes go;
    blank lines inside the tune go (in ABC a blank line would end it); `X:` becomes `X:1`; header fields are
    written `F:value`, with T: right after X: and K: last as the standard asks.
    """
    titles, header, body = [], [], []
    key = None
    for line in raw.split("\n"):
        line = _COMMENT.sub("", line).rstrip()
        if not line.strip():
            continue
        m = _FIELD_LINE.match(line)
        if key is None:  # still in the header
            if not m:
                # Music before any K: line means the header never closed.
                return None, "no K: field"
            name, value = m.group(1), m.group(2).strip()
            if name == "K":
                key = value or "C"
            elif name == "T":
                titles.append(value)
            elif name in HEADER_FIELDS_KEPT and name != "X":
                header.append(f"{name}:{value}")
            continue
        if m:
            if m.group(1) in BODY_FIELDS_KEPT:
                body.append(f"{m.group(1)}:{m.group(2).strip()}")
            continue
        line = repair_body_line(line)
        if line.strip():
            body.append(line)
    if key is None:
        return None, "no K: field"
    if not any(_NOTE.search(_QUOTED.sub("", b)) for b in body if not _FIELD_LINE.match(b)):
        return None, "no notes"
    lines = ["X:1", *(f"T:{t}" for t in titles), *header, f"K:{key}", *body]
    return "\n".join(lines), ""


def repair_body_line(line: str) -> str:
    """Repair one line of music without losing notes.

    - quoted strings other than chord symbols go: fingerings ("4"), text ("^SEGUE", "Fine", "D.C.");
    - quoted-printable debris from mailing-list archives: `=20` -> space, `=3D` -> `=`;
    - a decoration written before a slur moves inside it (`~(GA)` -> `(~GA)`); one before a tuplet, a bar line or
      a closing bracket, where no note follows it, goes;
    - a tie between two different pitches (`G3-A`, meant as legato) goes: a tie joins equal notes only;
    - invisible bar lines `[|]` (Ryan's uses them as line-end spacers; abc2midi reads them as a broken chord) go.
    """
    line = _QP_ARTIFACT.sub(lambda m: " " if m.group(1) == "20" else "=", line).replace("[|]", "")
    parts = _PROTECTED.split(line)
    for i, part in enumerate(parts):
        if i % 2:  # a protected piece
            if part.startswith('"') and not _CHORD_SYMBOL.fullmatch(part):
                parts[i] = ""
            continue
        part = _DECORATION_BEFORE_TUPLET.sub("", part)
        part = _DECORATION_BEFORE_SLUR.sub(r"\2\1", part)
        parts[i] = _DECORATION_WITHOUT_NOTE.sub("", part)
    return _drop_false_ties("".join(parts))


def _drop_false_ties(line: str) -> str:
    notes = list(_NOTE_TOKEN.finditer(line))
    cut = [a.end() - 1 for a, b in zip(notes, notes[1:])
           if a.group(5) and (a.group(2), a.group(3)) != (b.group(2), b.group(3))]
    for pos in reversed(cut):
        line = line[:pos] + line[pos + 1:]
    return line


@dataclass
class Corpus:
    tunes: list[str]
    stats: CorpusStats
    files: list[Path]


def load_corpus(sources, max_chars: int = 4000, midi_channel: int = 0) -> Corpus:
    """Read, split and clean every tune of `sources` (MIDI files through rlmusic.midi). Raises UserError when
    nothing usable is found."""
    from rlmusic import midi

    files = resolve_sources(list(sources))
    stats = CorpusStats(files=len(files))
    tunes: list[str] = []
    midi_files = [p for p in files if midi.is_midi(p)]
    stats.midi_files = len(midi_files)
    for path, text, reason in midi.convert_all(midi_files, midi_channel):
        if text is None:
            stats.midi_dropped.append((str(path), reason))
            continue
        stats.midi_converted += 1
        _keep(text, stats, tunes, max_chars)
    files_abc = [p for p in files if not midi.is_midi(p)]
    total = sum(p.stat().st_size for p in files_abc)
    bar = None
    if total > PROGRESS_BYTES:  # reading takes seconds: show it (memory stays with the tunes kept)
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading tunes", file=sys.stderr, mininterval=0.5)
    try:
        for path in files_abc:
            found = 0
            lines = file_lines(path, progress=bar.update if bar is not None else None)
            for raw in iter_tunes(lines, max_chars):
                found += 1
                _keep(raw, stats, tunes, max_chars)
            if not found:
                raise UserError(f"{path}: no ABC tune found (no line starts with X:)")
    finally:
        if bar is not None:
            bar.close()
    stats.tunes_kept = len(tunes)
    if not tunes:
        where = files[0] if len(files) == 1 else f"{len(files)} files"
        if stats.midi_dropped and len(stats.midi_dropped) == len(files):
            raise UserError(f"{where}: no usable tune ({stats.midi_dropped[0][1]}"
                            + (f", and {len(files) - 1} more" if len(files) > 1 else "") + ")")
        if stats.dropped:  # say why each tune found was dropped (too long is not the same as no K:)
            why = ", ".join(f"{n} {reason}" for reason, n in stats.dropped.most_common(3))
            raise UserError(f"{where}: no usable ABC tune among the {stats.tunes_found} found ({why})")
        raise UserError(f"{where}: no usable ABC tune found (a tune starts with X:, has a K: field and notes)")
    return Corpus(tunes=tunes, stats=stats, files=files)


def _keep(raw: str | None, stats: CorpusStats, tunes: list[str], max_chars: int) -> None:
    """Clean one raw tune (None: one given up as too long while read) and keep it, or count why not."""
    stats.tunes_found += 1
    tune, reason = clean_tune(raw) if raw is not None else (None, "")
    if raw is None or tune is not None and len(tune) > max_chars:
        tune, reason = None, f"longer than the limit of {max_chars:,} characters"
    if tune is None:
        stats.dropped[reason] += 1
    else:
        tunes.append(tune)


def split_train_val(tunes: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split by tune (never inside one), deterministic from `seed`. At least one tune goes to each side."""
    order = np.random.default_rng(seed).permutation(len(tunes))
    n_val = min(max(1, round(len(tunes) * val_fraction)), len(tunes) - 1) if len(tunes) > 1 else 0
    # Validation keeps the shuffled order, so the first `train.eval_chars` of it are a random sample of tunes
    # rather than the first collection read.
    val = [tunes[i] for i in order[:n_val]]
    train = [tunes[i] for i in sorted(order[n_val:])]
    return train, val


def join_tunes(tunes: list[str]) -> str:
    """The training stream: every tune followed by the separator, so the model learns where tunes end."""
    return "".join(t + TUNE_SEPARATOR for t in tunes)
