"""The character language model: Embedding -> LSTM x N [-> attention over past outputs] -> Dense(vocab).

One set of weights serves two forms:
- whole sequences (training, scoring): `model(tokens)` with tokens [batch, time] -> logits [batch, time, vocab];
- one step at a time with carried state (sampling, the RL policy): `model(tokens[:, None], states)`.
Both go through the same `call`, so they give the same logits (a test checks it). The state is a list with [h, c]
per LSTM layer and, with `attention_window`, the attention window's [keys, values, filled] last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from rlmusic._tf import tf
from rlmusic.attention import HEAD_DIM, HEADS, WindowAttention
from rlmusic.config import Checked, Range
from rlmusic.lstm import FastLSTM, KerasLSTM


@dataclass
class ModelConfig(Checked):
    embedding_dim: Annotated[int, Range(1)] = 64
    """Size of the learned vector for each character."""
    units: Annotated[int, Range(1)] = 512
    """LSTM units per layer (the hidden and cell state size)."""
    layers: Annotated[int, Range(1)] = 1
    """Number of stacked LSTM layers."""
    dropout: Annotated[float, Range(0, 1, max_open=True)] = 0.0
    """Dropout on each LSTM layer's output during training (0 = off)."""
    attention_window: Annotated[int, Range(0)] = 0
    """Causal attention from each step over the previous N outputs of the last LSTM layer (0 = off); see
    rlmusic/attention.py and benchmarks/attention.py for what it buys."""


class CharLSTM(tf.keras.Model):
    """Character LSTM whose recurrent state can be passed in and out (see module docstring)."""

    def __init__(self, vocab_size: int, cfg: ModelConfig, device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.cfg = cfg
        self.device = device
        self.embedding = tf.keras.layers.Embedding(vocab_size, cfg.embedding_dim, name="embedding")
        # FastLSTM equals Keras' LSTM(return_sequences=True, return_state=True) with a faster backward pass on
        # CPUs; on a GPU, KerasLSTM (the same variables) lets Keras run cuDNN. Checkpoints load into either.
        layer = KerasLSTM if device == "gpu" else FastLSTM
        self.lstms = [layer(cfg.units, name=f"lstm_{i}") for i in range(cfg.layers)]
        self.dropout = tf.keras.layers.Dropout(cfg.dropout)
        self.attention = WindowAttention(cfg.attention_window, name="attention") if cfg.attention_window else None
        self.head = tf.keras.layers.Dense(vocab_size, name="logits")

    def call(self, tokens, states=None, training=False):
        """tokens [B, T] int -> (logits [B, T, V] float32, states: list of [h, c] per layer)."""
        x = self.embedding(tokens)
        new_states = []
        for i, lstm in enumerate(self.lstms):
            x, h, c = lstm(x, initial_state=None if states is None else states[i], training=training)
            new_states.append([h, c])
            if self.cfg.dropout:
                x = self.dropout(x, training=training)
        if self.attention is not None:
            window = self.attention.initial_state(tf.shape(tokens)[0]) if states is None else states[-1]
            x, window = self.attention(x, window)
            new_states.append(window)
        logits = tf.cast(self.head(x), tf.float32)  # float32 logits even under mixed precision
        return logits, new_states

    def initial_state(self, batch_size: int):
        zeros = tf.zeros([batch_size, self.cfg.units])
        state = [[zeros, zeros] for _ in self.lstms]
        if self.attention is not None:
            state.append(self.attention.initial_state(batch_size))
        return state

    def state_spec(self):
        """The state's shapes without the batch dimension, nested as `initial_state` (for tf-agents)."""
        return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape[1:], t.dtype), self.initial_state(1))

    def build_weights(self):
        """Create the variables (Keras builds lazily) so a checkpoint can be restored into them."""
        self(tf.zeros([1, 1], tf.int32))
        return self


def build_model(vocab_size: int, cfg: ModelConfig, device: str = "cpu") -> CharLSTM:
    """The model with its variables created; `device` ("cpu" or "gpu", see rlmusic.devices) picks the LSTM kind."""
    return CharLSTM(vocab_size, cfg, device).build_weights()


def count_params(model: tf.keras.Model) -> int:
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))


def flops_per_char(vocab_size: int, cfg: ModelConfig, training: bool = True) -> float:
    """Multiply-adds x 2 for one character through the network (x3 with the backward pass)."""
    flops, width = 0.0, cfg.embedding_dim
    for _ in range(cfg.layers):
        flops += 2 * (width + cfg.units) * 4 * cfg.units
        width = cfg.units
    if cfg.attention_window:  # projections (q, k, v, out) and scores + weighted sum over the window per head
        flops += 2 * 4 * width * HEADS * HEAD_DIM + 2 * 2 * cfg.attention_window * HEADS * HEAD_DIM
    flops += 2 * width * vocab_size
    return flops * (3 if training else 1)
