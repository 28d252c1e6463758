"""`python -m rlmusic pretrain` end to end on the tiny test corpus, resume, and every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, TINY, cli, set_args


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_run_leaves_a_complete_run_dir(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "vocab.json", "corpus.json", "metrics.jsonl", "checkpoints", "tb"} <= names
    cfg = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert cfg["model"]["units"] == 16 and cfg["train"]["steps"] == 6
    assert sorted(p.name for p in (tiny_run / "checkpoints").iterdir()) == ["step-3", "step-6"]
    rows = read_metrics(tiny_run)
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]
    evals = [r for r in rows if "val_bits_per_char" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(0 < r["val_bits_per_char"] < 10 for r in evals)
    assert any(p.name.startswith("events.out.tfevents") for p in (tiny_run / "tb").iterdir())
    vocab = json.loads((tiny_run / "vocab.json").read_text())["chars"]
    assert "ü" in vocab  # the Latin-1 file was read, not refused


def test_resume_continues_at_the_saved_step(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))[0] == 0
    capsys.readouterr()
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=9"]),
                       capsys=capsys)
    assert code == 0
    assert "resuming from step 6" in err
    steps = [r["step"] for r in read_metrics(out) if "loss" in r]
    assert steps == [2, 4, 6, 8, 9]  # no step trained twice
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-6", "step-9"]


def test_resume_restores_weights_and_optimizer(tmp_path, data_dir):
    """Training 6 steps then 3 more gives the same weights as 9 in one go (same batches, same Adam state).

    The learning rate is held constant: the cosine schedule spans train.steps, so raising it changes the schedule.
    """
    from rlmusic.rundir import load_model

    a, b = tmp_path / "a", tmp_path / "b"
    flat = TINY + ["train.min_lr_fraction=1.0"]
    cli("pretrain", "--data", data_dir, "--out", a, *set_args(flat + ["train.steps=9"]))
    cli("pretrain", "--data", data_dir, "--out", b, *set_args(flat))
    cli("pretrain", "--data", data_dir, "--out", b, *set_args(flat + ["train.steps=9"]))
    wa, wb = load_model(a)[0].get_weights(), load_model(b)[0].get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_python_dash_m_entry_point(tmp_path, data_dir):
    """The real `python -m rlmusic` process: exit codes and one error line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--data", str(tmp_path / "missing.abc")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --data {tmp_path / 'missing.abc'}: no such file, folder or "
                                                "music21 collection (collections: oneills1850, ryansMammoth, "
                                                "airdsAirs, essenFolksong, miscFolk)"]


def _bad_inputs(tmp_path, data_dir):
    empty = tmp_path / "empty.abc"
    empty.write_text("")
    binary = tmp_path / "bin.abc"
    binary.write_bytes(bytes(range(256)) * 4)
    notunes = tmp_path / "words.abc"
    notunes.write_text("This is a letter, not a tune book.\n")
    return [
        # (comment, extra args, text the single error line must hold)
        ("missing --data path", ["--data", tmp_path / "nope"], "nope: no such file"),
        ("empty file", ["--data", empty], "empty.abc: the file is empty"),
        ("binary file", ["--data", binary], "bin.abc: this is a binary file"),
        ("text with no tunes", ["--data", notunes], "words.abc: no ABC tune found"),
        ("glob matching nothing", ["--data", str(tmp_path / "*.nothing")], "the pattern matches no file"),
        ("unknown --set key", ["--data", data_dir, "--set", "train.stepz=1"], "unknown config key train.stepz"),
        ("wrong type", ["--data", data_dir, "--set", "train.batch_size=big"], "config key train.batch_size"),
        ("missing --config file", ["--config", tmp_path / "none.yaml"], "none.yaml: no such file"),
        ("bad precision", ["--data", data_dir, "--set", "train.precision=int8"], "train.precision"),
    ]


def test_bad_inputs_give_one_error_line_and_exit_2(tmp_path, data_dir, capsys):
    for comment, args, message in _bad_inputs(tmp_path, data_dir):
        out = tmp_path / f"out-{comment.replace(' ', '_')}"
        code, _, err = cli("pretrain", "--out", out, *set_args(TINY), *args, capsys=capsys)
        error_lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2, comment
        assert len(error_lines) == 1 and message in error_lines[0], (comment, err)
        assert "Traceback" not in err, comment
        assert not out.exists(), f"{comment}: nothing may be written"


def test_out_with_a_different_vocabulary_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))[0] == 0
    other = tmp_path / "other.abc"
    other.write_text("X:1\nT:q\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc|" * 40 + "\n\nX:2\nT:r\nM:4/4\nK:C\n" +
                     "cBAG FEDC|" * 40 + "\n")
    before = (out / "vocab.json").read_text()
    code, _, err = cli("pretrain", "--data", other, "--out", out, *set_args(TINY + ["data.val_fraction=0.5"]),
                       capsys=capsys)
    assert code == 2
    assert "holds a run with a different vocabulary" in err and "start fresh" in err
    assert (out / "vocab.json").read_text() == before  # the old run is untouched


def test_out_with_a_different_model_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["model.units=24"]),
                       capsys=capsys)
    assert code == 2 and "model.units=16" in err


@pytest.mark.parametrize("damage,message", [
    ("config", "config.yaml: corrupt config file"),
    ("vocab", "vocab.json: corrupt vocabulary file"),
    ("checkpoints", "corrupt or mismatched checkpoint"),
])
def test_corrupt_run_dir(tmp_path, data_dir, capsys, damage, message):
    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    if damage == "config":
        (out / "config.yaml").write_text("model: [\n")
    elif damage == "vocab":
        (out / "vocab.json").write_text("{not json")
    else:  # both checkpoints (with only the newest damaged the run falls back: see below)
        for f in (out / "checkpoints").glob("step-*/ckpt.data*"):
            f.write_bytes(b"garbage" * 10)
    capsys.readouterr()
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=8"]),
                       capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    for f in (out / "checkpoints").glob("step-6/ckpt.data*"):
        f.write_bytes(b"garbage" * 10)
    capsys.readouterr()
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=8"]),
                       capsys=capsys)
    assert code == 0 and "using the previous checkpoint, step 3" in err and "resuming from step 3" in err
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == [2, 4, 6, 8]  # 4 and 6 not logged twice


def test_a_kill_after_a_checkpoint_leaves_no_doubled_rows_or_temp_folders(tmp_path, data_dir):
    """What kill -9 leaves: rows logged after the last checkpoint and a half-written checkpoint folder."""
    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    with open(out / "metrics.jsonl", "a") as f:  # steps 7-8 logged, then killed before the step-9 checkpoint
        f.write(json.dumps({"step": 8, "loss": 1.0}) + "\n")
    (out / "checkpoints" / ".tmp-step-abc").mkdir()
    (out / "checkpoints" / ".tmp-step-abc" / "ckpt.index").write_bytes(b"half")
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=10"]))
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == [2, 4, 6, 8, 10]
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_a_run_that_failed_before_its_first_checkpoint_is_replaced(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    import shutil

    shutil.rmtree(out / "checkpoints")  # as a run that died before its first checkpoint leaves it
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["model.units=24"]),
                       capsys=capsys)
    assert code == 0 and "resuming" not in err
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["units"] == 24


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, capsys, monkeypatch):
    from rlmusic._tf import tf
    from rlmusic.pretrain import Trainer

    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    good = {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-6").iterdir()}
    real_apply = Trainer._apply

    def diverging_apply(self, loss_fn):  # the loss turns NaN from the 8th step on (both window modes)
        loss, out = real_apply(self, loss_fn)
        return tf.where(self.optimizer.iterations >= 8, float("nan"), loss), out

    monkeypatch.setattr(Trainer, "_apply", diverging_apply)
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=30"]),
                       capsys=capsys)
    assert code == 2
    assert "error: loss became nan at step 8; the last good checkpoint (step 6) is kept" in err
    # on a line of its own, not glued to the end of the progress bar's line
    assert any(line.startswith("error: loss became nan") for line in err.split("\n"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-3", "step-6"]  # nothing new
    assert {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-6").iterdir()} == good


def test_wandb_offline_run(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    assert cli("pretrain", "--data", data_dir, "--out", out, "--wandb", *set_args(TINY))[0] == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))  # the run's history file was written


@pytest.mark.parametrize("fault", ["oserror", "tf"])
def test_a_full_disk_is_one_error_and_keeps_the_last_checkpoint(tmp_path, data_dir, capsys, monkeypatch, fault):
    """The disk fills after the step-6 checkpoint: the next checkpoint cannot be written."""
    import errno

    from rlmusic._tf import tf
    from rlmusic.rundir import RunDir

    out = tmp_path / "run"
    cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY))
    good = {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-6").iterdir()}

    def full(self, step, keep=2, **objects):
        if fault == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(RunDir, "save_checkpoint", full)
    capsys.readouterr()
    code, _, err = cli("pretrain", "--data", data_dir, "--out", out, *set_args(TINY + ["train.steps=9"]),
                       capsys=capsys)
    assert code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.split("\n") if ln.startswith("error:")]
    assert "cannot write (No space left on device); the last good checkpoint (step 6) is kept" in line
    assert {p.name: p.read_bytes() for p in (out / "checkpoints" / "step-6").iterdir()} == good


def test_wandb_without_a_key_says_how_to_log_in(tmp_path, data_dir):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc with a key
    proc = subprocess.run([sys.executable, "-m", "rlmusic", "pretrain", "--data", str(data_dir), "--out",
                           str(tmp_path / "run"), "--wandb", *set_args(TINY)], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-1500:]
    (line,) = [ln for ln in proc.stderr.split("\n") if ln.startswith("error:")]
    assert "--wandb: Weights & Biases is not set up" in line and "WANDB_MODE=offline" in line
    assert "Traceback" not in proc.stderr
