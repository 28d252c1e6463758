import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

# The smallest model and run that still exercise every code path; seconds on 2 cores.
TINY = ["model.embedding_dim=8", "model.units=16", "train.batch_size=4", "train.seq_length=32",
        "train.steps=6", "train.log_every=2", "train.eval_every=3", "train.warmup_steps=1",
        "data.val_fraction=0.25"]


def make_toy_run(path, seed=0):
    """A 'pretrained' run dir with a tiny untrained model over 15 characters, enough for the headers X T M K and a
    bar of notes (a valid tune, which fine-tuning under the grammar's mask needs)."""
    from rlmusic._tf import tf
    from rlmusic.model import ModelConfig, build_model
    from rlmusic.rundir import RunDir
    from rlmusic.vocab import Vocab

    vocab = Vocab(list("\nX:1TM4/KCABcd|"))
    tf.keras.utils.set_random_seed(seed)
    cfg = ModelConfig(embedding_dim=8, units=32)
    model = build_model(len(vocab), cfg)
    run = RunDir(path)
    run.path.mkdir(parents=True)
    run.write_config(json.dumps({"model": cfg.__dict__}))
    run.write_vocab(vocab)
    run.save_checkpoint(0, model=model)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def cli(*argv, capsys=None):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from rlmusic.cli import main

    code = main([str(a) for a in argv])
    if capsys is not None:
        out, err = capsys.readouterr()
        return code, out, err
    return code, "", ""


def set_args(overrides):
    return [x for o in overrides for x in ("--set", o)]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny pretrain run on the test corpus, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code, _, _ = cli("pretrain", "--data", DATA, "--out", out, *set_args(TINY))
    assert code == 0
    return out
