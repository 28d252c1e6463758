"""rlmusic: pretrain a character LSTM on ABC tunes, fine-tune it with reinforcement learning, sample and evaluate."""

import os

# TensorFlow prints pages of start-up notices (oneDNN, CPU features, CUDA probing); errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
