"""`python tests/logical_cpus.py N rlmusic-args...`: run the rlmusic CLI on a CPU split into N logical devices.

TensorFlow fixes its devices when it first starts, so tests of tf.distribute strategies run this in a fresh
process: `train.strategy=mirrored` then has N replicas, as it would on N GPUs."""

import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[1]))

from rlmusic.cli import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
