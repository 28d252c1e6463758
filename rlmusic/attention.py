"""Causal attention over a window of past LSTM outputs (`model.attention_window`).

At each step the last LSTM layer's output h_t asks (scaled dot-product, `HEADS` heads) which of the previous
`window` outputs h_{t-window} .. h_{t-1} matter now, and the answer is added to h_t before the output layer:

    y_t = h_t + W_o [softmax(q_t K^T / sqrt(d)) V]      q_t = h_t W_q,  K, V = the window's h W_k, h W_v

An extra "nothing" slot with score 0 and value 0 is always present, so a step may attend to nothing, and the
first step of a tune (an empty window) is defined. Magenta's attention_rnn attends the same way over its last 40
outputs (additively); dot-product heads cost less and train as well.

One code path serves whole sequences and single steps: the state carries the window's keys and values (already
projected, so a sampling step projects only the new output) and which of its slots are filled; a sequence is
appended to that window and every position sees exactly the `window` outputs before it. Step-by-step logits
therefore equal whole-sequence logits (a test checks it).
"""

from __future__ import annotations

from rlmusic._tf import tf

HEADS = 4
HEAD_DIM = 32


class WindowAttention(tf.keras.layers.Layer):
    """call(x [B, T, U], (keys [B, N, H*D], values [B, N, H*D], filled [B, N])) -> (y [B, T, U], new state)."""

    def __init__(self, window: int, **kwargs):
        super().__init__(**kwargs)
        self.window = window
        self.width = HEADS * HEAD_DIM

    def build(self, input_shape):
        units = int(input_shape[-1])
        self.wq = self.add_weight(name="query", shape=[units, self.width], initializer="glorot_uniform")
        self.wk = self.add_weight(name="key", shape=[units, self.width], initializer="glorot_uniform")
        self.wv = self.add_weight(name="value", shape=[units, self.width], initializer="glorot_uniform")
        # Zero-initialised output: a fresh attention model starts as the plain LSTM and learns what to add.
        self.wo = self.add_weight(name="output", shape=[self.width, units], initializer="zeros")
        super().build(input_shape)

    def initial_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.window, self.width])
        return [zeros, zeros, tf.zeros([batch_size, self.window])]

    def call(self, x, state):
        past_k, past_v, filled = state
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        n = self.window
        dtype = x.dtype
        k = tf.concat([tf.cast(past_k, dtype), tf.einsum("btu,uw->btw", x, tf.cast(self.wk, dtype))], 1)
        v = tf.concat([tf.cast(past_v, dtype), tf.einsum("btu,uw->btw", x, tf.cast(self.wv, dtype))], 1)
        ok = tf.concat([tf.cast(filled, dtype), tf.ones([batch, steps], dtype)], 1)  # [B, N + T]
        q = tf.einsum("btu,uw->btw", x, tf.cast(self.wq, dtype))

        def heads(t):  # [B, S, H*D] -> [B, H, S, D]
            return tf.transpose(tf.reshape(t, [batch, -1, HEADS, HEAD_DIM]), [0, 2, 1, 3])

        scores = tf.matmul(heads(q), heads(k), transpose_b=True) / tf.cast(HEAD_DIM ** 0.5, dtype)  # [B,H,T,N+T]
        # Query t sits at position n + t of the keys; it sees positions t .. n + t - 1 (the n before it).
        t_idx = tf.range(steps)[:, None]
        s_idx = tf.range(n + steps)[None, :]
        band = tf.logical_and(s_idx >= t_idx, s_idx < t_idx + n)  # [T, N+T]
        visible = tf.logical_and(band[None, None], ok[:, None, None, :] > 0)
        scores = tf.where(visible, scores, tf.cast(-1e9, dtype))
        nothing = tf.zeros([batch, HEADS, steps, 1], dtype)  # the "attend to nothing" slot: score 0, value 0
        weights = tf.nn.softmax(tf.concat([scores, nothing], -1), -1)[..., :-1]
        context = tf.matmul(weights, heads(v))  # [B, H, T, D]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, steps, self.width])
        y = x + tf.einsum("btw,wu->btu", context, tf.cast(self.wo, dtype))
        # The window keeps its static shape, as loops that carry the state (sampling, the RL policy) require.
        new_state = [tf.ensure_shape(k[:, -n:], past_k.shape), tf.ensure_shape(v[:, -n:], past_v.shape),
                     tf.ensure_shape(ok[:, -n:], filled.shape)]
        return y, new_state

    def get_config(self):
        return {**super().get_config(), "window": self.window}
