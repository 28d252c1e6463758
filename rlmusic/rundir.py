"""A run directory: everything a training run leaves behind, written so that nothing is ever half-written.

    config.yaml        the resolved config of the run
    vocab.json         the character vocabulary (the model is meaningless without it)
    corpus.json        what reading the data found (files, tunes kept, dropped by reason)
    checkpoints/step-N/ckpt.*   TensorFlow checkpoints (model, optimizer, step); no pickle anywhere
    metrics.jsonl      one JSON object per logged step
    tb/                TensorBoard event files

Files are written to a temporary name and renamed into place; a checkpoint is written into a temporary folder
that is renamed to `step-N` when complete, so the newest complete checkpoint is always the highest `step-N`.
"""

from __future__ import annotations

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
from rlmusic.vocab import Vocab

_STEP_DIR = re.compile(r"^step-(\d+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place (same permissions as open() gives)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

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
            final = self.checkpoint_root / f"step-{step}"
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.checkpoint_steps()[:-keep]:
            shutil.rmtree(self.checkpoint_root / f"step-{old}", ignore_errors=True)
        return final

    def restore_checkpoint(self, step: int | None = None, partial: bool = False, **objects) -> int:
        """Restore `objects` from checkpoint `step` (default: the newest). Returns the step restored."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path}: the run has no checkpoint yet (checkpoints/step-N)")
        prefix = self.checkpoint_root / f"step-{step}" / "ckpt"
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


# What a full disk, a read-only or vanished folder raise while a run writes its files and checkpoints.
WRITE_ERRORS = (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.NotFoundError,
                tf.errors.FailedPreconditionError)


def write_failure(run: "RunDir", exc: BaseException, what: str = "step") -> UserError:
    """One error line for a write that failed: the run, the reason, and the newest checkpoint that is kept."""
    reason = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    where = getattr(exc, "filename", None) or run.path
    last = run.latest_step()
    kept = f"the last good checkpoint ({what} {last}) is kept" if last else "no checkpoint was written"
    return UserError(f"{where}: cannot write ({reason.strip().splitlines()[0][:200]}); {kept} in {run.path}")


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
