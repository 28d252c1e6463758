"""Where a run computes: the device (`auto | cpu | gpu`), the distribution strategy and the precision, resolved once.

- device: `auto` uses a GPU when TensorFlow sees one. On a GPU the LSTM layers run Keras' LSTM, which TensorFlow
  runs through the fused cuDNN kernel there (`rlmusic.lstm.KerasLSTM`); on a CPU the hand-written `FastLSTM`. Both
  hold the same variables, so a checkpoint from one loads into the other.
- strategy: `none` (one device), `mirrored` (tf.distribute.MirroredStrategy: every visible GPU, or the logical
  CPU devices when there is no GPU and the CPU was split into several), `multiworker`
  (MultiWorkerMirroredStrategy, configured by the standard TF_CONFIG environment variable); `auto` is
  `multiworker` when TF_CONFIG is set, `mirrored` with more than one GPU, else `none`.
- precision: `auto` is mixed_float16 on a GPU, mixed_bfloat16 on a CPU with AVX512-BF16 or AMX, else float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rlmusic._tf import tf
from rlmusic.errors import UserError

def gpus() -> list:
    """The GPUs TensorFlow sees (the one place this module asks; tests replace it)."""
    return tf.config.list_physical_devices("GPU")


def resolve_device(choice: str, field: str = "train.device") -> str:
    """"cpu" or "gpu" for a `device` setting; asking for a GPU where TensorFlow sees none is an error."""
    if choice == "cpu":
        return "cpu"
    found = gpus()
    if choice == "gpu" and not found:
        raise UserError(f"{field}=gpu: TensorFlow sees no GPU (install the CUDA libraries with "
                        f"pip install -e '.[gpu]'; nvidia-smi should list the card); use {field}=auto or cpu")
    return "gpu" if found else "cpu"


def _cpuinfo(key: str) -> str | None:
    """The value of the first `key` line of /proc/cpuinfo (None off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    return set((_cpuinfo("flags") or "").split())


def cpu_name() -> str:
    """The CPU's model name and whether it has AVX512-BF16 (benchmark figures name the machine they ran on)."""
    import platform

    name = _cpuinfo("model name") or platform.processor() or "unknown CPU"
    return f"{name} ({'with' if 'avx512_bf16' in cpu_flags() else 'without'} AVX512-BF16)"


def resolve_precision(choice: str, device: str) -> str:
    """The Keras precision policy for a `precision` setting on `device`."""
    if choice != "auto":
        return choice
    if device == "gpu":
        return "mixed_float16"
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "float32"


def resolve_strategy(choice: str, device: str, field: str = "train.strategy") -> tf.distribute.Strategy:
    if choice == "auto":
        choice = "multiworker" if os.environ.get("TF_CONFIG") else ("mirrored" if len(gpus()) > 1 else "none")
    if choice == "none":
        return tf.distribute.get_strategy()  # the default strategy: one device, no replicas
    if choice == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError(f"{field}=multiworker: set TF_CONFIG on every worker (docs/gpus.md)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as exc:
            raise UserError(f"TF_CONFIG is not JSON: {exc}") from exc
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, KeyError, TypeError) as exc:  # a task index beyond the cluster, a missing role
            raise UserError(f"TF_CONFIG does not describe this worker's place in the cluster "
                            f"({str(exc).strip().splitlines()[0]})") from exc
    if device == "gpu":
        return tf.distribute.MirroredStrategy()  # every visible GPU
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, but for non-chief multi-worker processes)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def describe(strategy: tf.distribute.Strategy, device: str, precision: str) -> str:
    replicas = strategy.num_replicas_in_sync
    kinds = [(tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
             (tf.distribute.MirroredStrategy, "MirroredStrategy")]
    kind = next((name for cls, name in kinds if isinstance(strategy, cls)), "one device")
    return f"device {device}, {kind} ({replicas} replica{'s' * (replicas > 1)}), precision {precision}"
