"""Device choice and the GPU layer kind, tested on the CPU: the GPU list is mocked at rlmusic.devices.gpus (the
tf.config boundary); the layer Keras runs through cuDNN on a GPU runs its generic loop here, with the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic import devices
from rlmusic._tf import tf
from rlmusic.errors import UserError
from rlmusic.model import ModelConfig, build_model
from rlmusic.rundir import RunDir, load_model
from rlmusic.vocab import Vocab


@pytest.mark.parametrize("choice, visible, expected", [
    ("cpu", [], "cpu"),
    ("cpu", ["GPU:0"], "cpu"),  # asked for the CPU: a visible GPU is not used
    ("auto", [], "cpu"),
    ("auto", ["GPU:0"], "gpu"),
    ("gpu", ["GPU:0", "GPU:1"], "gpu"),
])
def test_device_choice(monkeypatch, choice, visible, expected):
    monkeypatch.setattr(devices, "gpus", lambda: visible)
    assert devices.resolve_device(choice) == expected


def test_asking_for_a_gpu_where_there_is_none_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(devices, "gpus", lambda: [])
    with pytest.raises(UserError, match=r"train.device=gpu: TensorFlow sees no GPU.*\.\[gpu\]"):
        devices.resolve_device("gpu")


@pytest.mark.parametrize("choice, device, flags, expected", [
    ("float32", "gpu", set(), "float32"),  # an explicit choice stands
    ("auto", "gpu", set(), "mixed_float16"),
    ("auto", "cpu", {"avx2", "avx512_bf16"}, "mixed_bfloat16"),
    ("auto", "cpu", {"avx2", "amx_bf16"}, "mixed_bfloat16"),
    ("auto", "cpu", {"avx2", "avx512f"}, "float32"),  # AVX-512 without BF16: no fast bf16 matmuls
])
def test_precision_choice(monkeypatch, choice, device, flags, expected):
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    assert devices.resolve_precision(choice, device) == expected


def test_strategy_choice(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(devices, "gpus", lambda: [])
    assert devices.resolve_strategy("auto", "cpu").num_replicas_in_sync == 1  # nothing to spread over
    with pytest.raises(UserError, match="multiworker: set TF_CONFIG"):
        devices.resolve_strategy("multiworker", "cpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not JSON"):
        devices.resolve_strategy("multiworker", "cpu")


@pytest.mark.parametrize("trained_on, loaded_on", [("cpu", "gpu"), ("gpu", "cpu")])
def test_a_checkpoint_from_one_lstm_kind_loads_into_the_other_with_equal_logits(tmp_path, trained_on, loaded_on):
    """The CPU model (FastLSTM) and the GPU model (KerasLSTM, cuDNN on a GPU) read each other's checkpoints:
    the same variables at the same paths, and the same logits for whole sequences and for single steps."""
    cfg = ModelConfig(embedding_dim=8, units=16, layers=2)
    tf.keras.utils.set_random_seed(1)
    model = build_model(12, cfg, trained_on)
    for v in model.trainable_variables:  # weights unlike any initialiser's, so a missed restore shows
        v.assign(tf.random.normal(v.shape, stddev=0.5))
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config('{"model": {"embedding_dim": 8, "units": 16, "layers": 2}}')
    run.write_vocab(Vocab(list("abcdefghijk\n")))
    run.save_checkpoint(1, model=model)
    other, _, _ = load_model(run.path, device=loaded_on)
    assert [type(layer).__name__ for layer in other.lstms] == ["KerasLSTM" if loaded_on == "gpu" else "FastLSTM"] * 2
    tokens = tf.constant(np.random.default_rng(0).integers(0, 12, size=(3, 20)), tf.int32)
    np.testing.assert_allclose(other(tokens)[0].numpy(), model(tokens)[0].numpy(), atol=1e-5)
    state_a, state_b = model.initial_state(3), other.initial_state(3)
    for t in range(5):  # stepping with carried state, as sampling and the RL policy do
        la, state_a = model(tokens[:, t:t + 1], state_a)
        lb, state_b = other(tokens[:, t:t + 1], state_b)
        np.testing.assert_allclose(lb.numpy(), la.numpy(), atol=1e-5)
    # a sequence from a carried state (how windows=tunes trains)
    np.testing.assert_allclose(other(tokens[:, 5:], state_b)[0].numpy(), model(tokens[:, 5:], state_a)[0].numpy(),
                               atol=1e-5)


def test_the_gpu_layer_trains_the_same_variables():
    """Gradients through Keras' LSTM reach the shared variables (and only those): one set of weights."""
    cfg = ModelConfig(embedding_dim=8, units=16)
    cpu, gpu = build_model(12, cfg, "cpu"), build_model(12, cfg, "gpu")
    for a, b in zip(cpu.trainable_variables, gpu.trainable_variables):
        b.assign(a)
    names = [[v.name.split('/', 1)[1] for v in m.trainable_variables] for m in (cpu, gpu)]
    assert names[0] == names[1] and len(names[0]) == 6  # embedding, kernel, recurrent, bias, head kernel, bias
    tokens = tf.constant([[1, 2, 3, 4, 5, 6]])
    grads = []
    for model in (cpu, gpu):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(tokens)[0] ** 2)
        grads.append(tape.gradient(loss, model.trainable_variables))
    for a, b in zip(*grads):
        np.testing.assert_allclose(tf.convert_to_tensor(b).numpy(), tf.convert_to_tensor(a).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_the_gpu_extra_brings_cuda_for_the_pinned_tensorflow():
    """`.[gpu]` must name the very TensorFlow the package pins, with the extra that (per the installed
    TensorFlow's own metadata) brings the CUDA and cuDNN wheels."""
    import importlib.metadata
    import tomllib

    from conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = next(d for d in project["dependencies"] if d.startswith("tensorflow=="))
    assert project["optional-dependencies"]["gpu"] == [pinned.replace("tensorflow", "tensorflow[and-cuda]", 1)]
    cuda = [r for r in importlib.metadata.requires("tensorflow") if "extra == 'and-cuda'" in r]
    assert any(r.startswith("nvidia-cudnn-cu12") for r in cuda)
    assert importlib.metadata.version("tensorflow") == pinned.split("==")[1]


def test_float16_pretraining_runs_with_loss_scaling(tmp_path):
    """mixed_float16 (what precision auto picks on a GPU) needs Keras' loss scaling in the custom step; on the
    CPU it is slow but runs the same code: the loss is finite and falls, the checkpoint samples."""
    from conftest import DATA, TINY, cli

    out = tmp_path / "f16"
    sets = [x for s in [*TINY, "train.precision=mixed_float16", "train.steps=12", "train.learning_rate=0.01"]
            for x in ("--set", s)]
    assert cli("pretrain", "--data", DATA, "--out", out, *sets)[0] == 0
    losses = [r["loss"] for r in RunDir(out).read_metrics() if "loss" in r]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # put back after the run
    assert cli("sample", "--checkpoint", out, "--num", 1, "--max-length", 20)[0] == 0


def test_one_cpu_still_gets_two_inter_op_threads():
    # pinned to one CPU, TensorFlow would give its inter-op pool one thread, which the compiled collection loop
    # holds while a reward that runs TensorFlow (the discriminator) waits for one: a hang (rlmusic/_tf.py)
    import os
    import subprocess
    import sys

    code = ("from rlmusic._tf import tf; import os; "
            "print(len(os.sched_getaffinity(0)), tf.config.threading.get_inter_op_parallelism_threads())")
    one_cpu = sorted(os.sched_getaffinity(0))[:1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: os.sched_setaffinity(0, one_cpu)).stdout.split()
    assert out == ["1", "2"]
