"""A run directory: everything a training run leaves behind, written so that nothing is ever half-written.

    config.yaml        the resolved config of the run
    vocab.json         the character vocabulary (the model is meaningless without it)
    .lock              held (flock) by the one run writing into the folder; the kernel frees it if the run dies
    corpus.json        what reading the data found (files, tunes kept, dropped by reason)
    checkpoints/step-N/ckpt.*   TensorFlow checkpoints (model, optimizer, step); no pickle anywhere
    checkpoints/step-N/vocab.sha256   the fingerprint of the vocabulary these weights were trained on
    metrics.jsonl      one JSON object per logged step
    tb/                TensorBoard event files

Files are written to a temporary name and renamed into place; a checkpoint is written into a temporary folder
that is renamed to `step-N` when complete, so the newest complete checkpoint is always the highest `step-N`.
A resumed run writes its new config.yaml only with its first checkpoint: until then the folder still describes
the run its newest checkpoint came from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from rlmusic._tf import tf
import yaml

from rlmusic.errors import UserError
from rlmusic.files import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)
from rlmusic.vocab import Vocab

_STEP_DIR = re.compile(r"^step-(\d+)$")


def vocab_fingerprint(vocab: Vocab) -> str:
    """The SHA-256 of the vocabulary's characters in order: two characters swapped give another fingerprint."""
    return hashlib.sha256(json.dumps(vocab.chars, ensure_ascii=False).encode("utf-8")).hexdigest()


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pending: dict[str, str] = {}  # files a resumed run writes with its first checkpoint
        self._lock_fd: int | None = None

    # --- small files -------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def exists(self) -> bool:
        return self.config_path.exists()

    def read_config_dict(self) -> dict:
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{self.path}: not a run directory (no config.yaml)") from None
        except (yaml.YAMLError, UnicodeDecodeError):
            raise UserError(f"{self.config_path}: corrupt config file (not valid YAML)") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.config_path}: corrupt config file (expected a mapping)")
        return data

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def read_vocab(self) -> Vocab:
        path = self.path / "vocab.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{self.path}: not a complete run directory (no vocab.json)") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: corrupt vocabulary file") from None
        return Vocab.from_json(text, where=str(path))

    def check_vocab(self, vocab: Vocab) -> None:
        """A run continues only on the vocabulary it was trained on (its embedding rows are those characters)."""
        saved = self.read_vocab()
        if saved != vocab:
            raise UserError(f"--out {self.path} holds a run with a different vocabulary ({saved.diff(vocab)}); "
                            f"use another --out, or delete {self.path} to start fresh")

    def write_vocab(self, vocab: Vocab) -> None:
        atomic_write_text(self.path / "vocab.json", vocab.to_json())

    def write_run_files(self, files: dict[str, str], now: bool) -> None:
        """config.yaml, vocab.json, corpus.json: written `now` (a new run), or else with the first checkpoint this
        run saves (a resumed run: a re-run that fails before then leaves the folder as it was)."""
        if now:
            for name, text in files.items():
                atomic_write_text(self.path / name, text)
        else:
            self._pending.update(files)

    def _flush_pending(self) -> None:
        for name, text in self._pending.items():
            atomic_write_text(self.path / name, text)
        self._pending.clear()

    def write_json(self, name: str, obj) -> None:
        atomic_write_text(self.path / name, json.dumps(obj, indent=2, ensure_ascii=False))

    def append_metrics(self, row: dict) -> None:
        # One line per write, flushed at once: a crash loses at most the line being written.
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Drop the rows logged after `step` (a run killed after its last checkpoint logged them; the resumed run
        logs those steps again)."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return
        kept = [json.dumps(r) + "\n" for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(path, "".join(kept))

    def elapsed_at(self, step: int) -> float:
        """Wall seconds the run had spent when it logged `step` (0 for a new run), so a resumed run's
        `elapsed_s` goes on counting from there."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= step and "elapsed_s" in r]
        return float(rows[-1]["elapsed_s"]) if rows else 0.0

    # --- checkpoints -------------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_steps(self) -> list[int]:
        if not self.checkpoint_root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.checkpoint_root.iterdir() if (m := _STEP_DIR.match(p.name)))

    def latest_step(self) -> int | None:
        steps = self.checkpoint_steps()
        return steps[-1] if steps else None

    def save_checkpoint(self, step: int, keep: int = 2, **objects) -> Path:
        """Write a tf.train.Checkpoint of `objects` as checkpoints/step-N, atomically; keep the newest `keep`."""
        self.checkpoint_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoint_root, prefix=".tmp-step-"))
        try:
            tf.train.Checkpoint(**objects).write(str(tmp / "ckpt"))
            vocab_text = self._pending.get("vocab.json")
            if vocab_text is None and (self.path / "vocab.json").exists():
                vocab_text = (self.path / "vocab.json").read_text(encoding="utf-8")
            if vocab_text is not None:  # (a multi-worker run's scratch folder has none)
                fingerprint = vocab_fingerprint(Vocab.from_json(vocab_text))
                (tmp / "vocab.sha256").write_text(fingerprint + "\n", encoding="utf-8")
            final = self.checkpoint_root / f"step-{step}"
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._flush_pending()
        for old in self.checkpoint_steps()[:-keep]:
            shutil.rmtree(self.checkpoint_root / f"step-{old}", ignore_errors=True)
        return final

    def check_fingerprint(self, step: int) -> None:
        """vocab.json must be the vocabulary checkpoint `step` was trained on (an edited or swapped file would run
        the model on the wrong characters without a word). Checkpoints older than fingerprints pass."""
        path = self.checkpoint_root / f"step-{step}" / "vocab.sha256"
        if not path.exists():
            return
        if path.read_text(encoding="utf-8").strip() != vocab_fingerprint(self.read_vocab()):
            raise UserError(f"{self.path / 'vocab.json'}: not the vocabulary the weights of checkpoints/step-{step} "
                            "were trained on (its fingerprint differs: the file was edited or comes from another "
                            "run); restore the run's own vocab.json")

    def restore_checkpoint(self, step: int | None = None, partial: bool = False, **objects) -> int:
        """Restore `objects` from checkpoint `step` (default: the newest). Returns the step restored."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path}: the run has no checkpoint yet (checkpoints/step-N)")
        prefix = self.checkpoint_root / f"step-{step}" / "ckpt"
        self.check_fingerprint(step)
        try:
            status = tf.train.Checkpoint(**objects).read(str(prefix))
            # Every variable we hold must come from the checkpoint; with `partial`, values we do not hold (the
            # optimizer's, when only the model is wanted) may stay unused.
            status.assert_existing_objects_matched()
            if partial:
                status.expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError, OSError, IndexError) as exc:
            # what the checkpoint reader raises for missing, truncated or foreign files and for variables whose
            # shapes or names do not match the model built from config.yaml
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{prefix.parent}: corrupt or mismatched checkpoint ({first[:200]})") from exc
        return step

    def restore_newest(self, log=print, partial: bool = False, **objects) -> int:
        """Restore the newest checkpoint that reads; an unreadable newest one (a disk fault, a kill during a
        copy) falls back to the one before, saying so. If none reads, the newest one's error is raised."""
        steps = self.checkpoint_steps()
        first_error = None
        for step in reversed(steps):
            try:
                restored = self.restore_checkpoint(step, partial=partial, **objects)
            except UserError as exc:
                first_error = first_error or exc
                continue
            if first_error is not None:
                log(f"warning: {first_error}; using the previous checkpoint, step {restored}")
            return restored
        if first_error is None:
            raise UserError(f"{self.path}: the run has no checkpoint yet (checkpoints/step-N)")
        raise first_error

    def clean_temporary(self) -> None:
        """Remove what a run killed while saving left behind (`.tmp-step-*` folders, `.name.*.tmp` files)."""
        for root in (self.checkpoint_root, self.path):
            if not root.is_dir():
                continue
            for p in root.iterdir():
                if p.name.startswith(".tmp-step-") and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                    p.unlink(missing_ok=True)

    def has_checkpoint(self) -> bool:
        return self.latest_step() is not None

    def check_is_run_dir(self, flag: str) -> None:
        """Before any work: the path must be a folder (or not exist yet), never a file."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{flag} {self.path}: is a file, not a run directory")

    # --- ownership ---------------------------------------------------------------------------------------------
    def lock(self, flag: str) -> None:
        """Own the folder until `unlock` (or this process ends): a second run into it meets one error naming the
        first. An flock, so a run killed by any means (kill -9 included) leaves no stale lock behind."""
        self.check_is_run_dir(flag)
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{flag} {self.path}: another run ({holder}) is writing into this folder; wait for it "
                            f"to end, or choose another {flag}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the folder; one this run created and left empty (it failed before writing) is removed."""
        if self._lock_fd is None:
            return
        if getattr(self, "_created", False) and [p.name for p in self.path.iterdir()] == [".lock"]:
            (self.path / ".lock").unlink(missing_ok=True)
            self.path.rmdir()
        os.close(self._lock_fd)
        self._lock_fd = None


# What a full disk, a read-only or vanished folder raise while a run writes its files and checkpoints (and memory
# running out, which TensorFlow reports as the same ResourceExhaustedError as a full disk).
WRITE_ERRORS = (OSError, MemoryError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                tf.errors.NotFoundError, tf.errors.FailedPreconditionError)


# The operating system's words for why a write failed, found anywhere in TensorFlow's longer messages.
_OS_REASONS = re.compile(r"No space left on device|Disk quota exceeded|Read-only file system|Permission denied|"
                         r"No such file or directory|Input/output error|File too large")


def write_failure(run: "RunDir", exc: BaseException, what: str = "step", config_keys: str = "") -> UserError:
    """One error line for a write that failed (the run, the reason, the newest checkpoint that is kept), or for
    memory that ran out (TensorFlow raises both as ResourceExhaustedError), naming `config_keys` to lower."""
    reason = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    last = run.latest_step()
    kept = f"the last good checkpoint ({what} {last}) is kept" if last else "no checkpoint was written"
    if isinstance(exc, (MemoryError, tf.errors.ResourceExhaustedError)) and not _OS_REASONS.search(reason):
        lower = f"; lower {config_keys}" if config_keys else ""
        return UserError(f"out of memory at this size{lower} ({kept} in {run.path})")
    where = getattr(exc, "filename", None) or run.path
    known = _OS_REASONS.search(reason)
    reason = known.group() if known else reason.strip().splitlines()[0][:200]
    return UserError(f"{where}: cannot write ({reason}); {kept} in {run.path}")


SHIPPED_MODEL = "rlmusic/pretrained/folk"


def shipped_model() -> Path:
    """The run directory of the model shipped in the package (its MODEL_CARD.md says how it was trained)."""
    path = Path(__file__).resolve().parent / "pretrained" / "folk"
    if not (path / "config.yaml").exists():
        raise UserError(f"the shipped model ({SHIPPED_MODEL}) is not in this installation; "
                        "give --checkpoint RUN (a pretrain run directory)")
    return path


def load_model(path: str | Path, device: str = "cpu"):
    """(model, vocab, config dict) of a run dir's newest checkpoint, for sampling, evaluation and fine-tuning;
    `device` as rlmusic.model.build_model (a checkpoint trained on either device loads on both)."""
    from rlmusic import config as config_lib
    from rlmusic.model import ModelConfig, build_model

    run = RunDir(path)
    if not run.path.is_dir():
        raise UserError(f"--checkpoint {path}: no such run directory")
    cfg = run.read_config_dict()
    model_cfg = config_lib.from_dict(ModelConfig, cfg.get("model") or {}, prefix="model.")
    vocab = run.read_vocab()
    model = build_model(len(vocab), model_cfg, device)
    run.restore_newest(model=model, partial=True, log=lambda m: print(m, file=sys.stderr))
    return model, vocab, cfg


def kept_on_interrupt(run: RunDir, it: int, objects: dict, exc: KeyboardInterrupt) -> KeyboardInterrupt:
    """Save the iterations done (unless the newest checkpoint holds them) and return the interruption to raise,
    saying where the run stopped and where it resumes (fine-tuning's PPO, REINFORCE and DPO runs alike)."""
    if it > (run.latest_step() or 0):
        run.save_checkpoint(it, **objects)
    return type(exc)(f"at iteration {it}; the run resumes from its checkpoint (iteration {run.latest_step() or 0}) "
                     f"in {run.path}")
