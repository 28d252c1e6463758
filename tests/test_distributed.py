"""tf.distribute on the CPU: a CPU split into two logical devices stands in for two GPUs (mirrored), and two
processes on localhost ports for two machines (multiworker)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, REPO, TINY, cli
from rlmusic.rundir import RunDir

SCRIPT = Path(__file__).with_name("logical_cpus.py")
# dropout 0: replicas draw their own dropout masks, which would make the curves differ by design; a constant
# learning rate (min_lr_fraction 1): the cosine schedule depends on train.steps, which the resume raises
BASE = [*TINY, "train.steps=12", "train.log_every=1", "train.eval_every=6", "model.dropout=0",
        "train.min_lr_fraction=1"]


def pretrain(out, *sets, devices=2, steps=None, env=None):
    args = [sys.executable, str(SCRIPT), str(devices), "pretrain", "--data", str(DATA), "--out", str(out)]
    for s in [*BASE, *sets, *([f"train.steps={steps}"] if steps else [])]:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def losses(out) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in RunDir(out).read_metrics() if "loss" in r}


@pytest.mark.parametrize("windows", ["tunes", "random"])
def test_mirrored_on_two_replicas_gives_one_replica_s_loss_curve(tmp_path, windows, capsys):
    """Same global batch, same data order: each replica computes its rows' share of the global mean and the
    optimizer sums the replicas' gradients, so the arithmetic is that of one replica on the whole batch. What
    may differ is the order of floating-point sums (per-replica partial sums, an all-reduce): ~1e-7 relative per
    step, grown by 12 Adam steps at lr 1e-2 to well under 1e-3 (a wrong share, e.g. each replica's own mean, or
    rows given to the wrong replica's carried state, moves the curve by 1e-2 or more)."""
    mirrored, single = tmp_path / "mirrored", tmp_path / "single"
    proc = pretrain(mirrored, "train.strategy=mirrored", f"data.windows={windows}")
    assert "MirroredStrategy (2 replicas)" in proc.stderr + proc.stdout
    pretrain(single, "train.strategy=none", f"data.windows={windows}")
    a, b = losses(mirrored), losses(single)
    assert sorted(a) == list(range(1, 13))
    np.testing.assert_allclose([a[s] for s in sorted(a)], [b[s] for s in sorted(b)], rtol=1e-3)
    assert a[12] < a[1]  # it learned

    # resumed from its step-12 checkpoint, it continues as a run that never stopped
    pretrain(mirrored, "train.strategy=mirrored", f"data.windows={windows}", steps=16)
    straight = tmp_path / "straight"
    pretrain(straight, "train.strategy=mirrored", f"data.windows={windows}", steps=16)
    a, c = losses(mirrored), losses(straight)
    assert sorted(a) == list(range(1, 17))
    np.testing.assert_allclose([a[s] for s in range(13, 17)], [c[s] for s in range(13, 17)], rtol=1e-3)

    # its checkpoint is an ordinary one: `sample` (one device) reads it
    code, out, _ = cli("sample", "--checkpoint", mirrored, "--num", 2, "--max-length", 40, capsys=capsys)
    assert code == 0 and out.count("X:1") == 2


def test_a_batch_that_does_not_split_over_the_replicas_is_named(tmp_path):
    args = [sys.executable, str(SCRIPT), "2", "pretrain", "--data", str(DATA), "--out", str(tmp_path / "x")]
    for s in [*BASE, "train.strategy=mirrored", "train.batch_size=5"]:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0
    assert "train.batch_size=5 does not split evenly over 2 replicas" in proc.stderr
    assert "Traceback" not in proc.stderr


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_on_two_local_processes(tmp_path):
    """Two workers (TF_CONFIG, localhost ports) train one model to the end; only the chief (worker 0) writes
    the run directory, and the run it writes has the steps of a one-process run."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    out = tmp_path / "mw"
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = [sys.executable, "-m", "rlmusic", "pretrain", "--data", str(DATA), "--out", str(out)]
        for s in [*BASE, "train.strategy=multiworker", "train.steps=6"]:
            args += ["--set", s]
        procs.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    assert "MultiWorkerMirroredStrategy (2 replicas)" in results[0][1]
    run = RunDir(out)
    steps = [r["step"] for r in run.read_metrics() if "loss" in r]
    assert run.latest_step() == 6 and steps == list(range(1, 7))  # one writer: each step logged once
    # no worker's scratch left behind (the chief's lock file stays: it is how a second run finds the folder taken)
    assert not any(p.name.startswith(".") and p.name != ".lock" for p in out.iterdir())


def finetune(pretrained, out, *sets, devices=2):
    args = [sys.executable, str(SCRIPT), str(devices), "finetune", "--checkpoint", str(pretrained), "--config", "tiny",
            "--out", str(out)]
    for s in ["tunes_per_iteration=4", "update_buckets=2", "ptx_coef=0.5", *sets]:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_finetune_under_mirrored_splits_the_update_and_its_run_samples(tiny_run, tmp_path, capsys):
    """The PPO update on 2 replicas (each bucket's tunes split between them) is the one-replica update: with the
    same seed the first iteration collects the same tunes, so its loss (before any update differs) is equal."""
    mirrored, single = tmp_path / "mirrored", tmp_path / "single"
    proc = finetune(tiny_run, mirrored, "strategy=mirrored", "iterations=2")
    assert "MirroredStrategy (2 replicas)" in proc.stderr
    finetune(tiny_run, single, "strategy=none", "iterations=2")
    a, b = RunDir(mirrored).read_metrics(), RunDir(single).read_metrics()
    assert [r["step"] for r in a] == [1, 2]
    assert a[0]["chars_per_tune"] == b[0]["chars_per_tune"]  # the same tunes were collected
    assert a[0]["loss"] == pytest.approx(b[0]["loss"], rel=1e-4, abs=1e-6)
    code, out, _ = cli("sample", "--checkpoint", mirrored, "--num", 2, "--max-length", 40, capsys=capsys)
    assert code == 0 and out.count("X:1") == 2


def test_a_finetune_batch_that_does_not_split_over_the_replicas_is_named(tiny_run, tmp_path):
    args = [sys.executable, str(SCRIPT), "2", "finetune", "--checkpoint", str(tiny_run), "--config", "tiny",
            "--out", str(tmp_path / "x"), "--set", "strategy=mirrored", "--set", "tunes_per_iteration=6",
            "--set", "update_buckets=2"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "a multiple of update_buckets x replicas (2 x 2)" in proc.stderr
    assert not (tmp_path / "x").exists()  # refused before anything is written
