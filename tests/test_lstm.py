"""FastLSTM must equal Keras' LSTM: same outputs, same gradients, for sequences and for single steps."""

import numpy as np
import pytest

from rlmusic._tf import tf
from rlmusic.lstm import FastLSTM


def _loss_and_grads(layer, x, h0, c0):
    with tf.GradientTape() as tape:
        tape.watch([x, h0, c0])
        y, h, c = layer(x, initial_state=[h0, c0])
        # Weights on every output, the final states included, so each backward path is exercised.
        loss = tf.reduce_sum(y * y * 0.3) + tf.reduce_sum(h * 1.7) + tf.reduce_sum(c * c)
    return y, tape.gradient(loss, [x, h0, c0] + layer.trainable_variables)


@pytest.mark.parametrize("steps", [1, 2, 9])
def test_fast_lstm_matches_keras(steps):
    rng = np.random.default_rng(steps)
    x = tf.constant(rng.normal(size=(3, steps, 5)).astype(np.float32))
    h0 = tf.constant(rng.normal(size=(3, 6)).astype(np.float32))
    c0 = tf.constant(rng.normal(size=(3, 6)).astype(np.float32))
    keras = tf.keras.layers.LSTM(6, return_sequences=True, return_state=True)
    fast = FastLSTM(6)
    keras(x), fast(x)
    fast.set_weights(keras.get_weights())
    yk, gk = _loss_and_grads(keras, x, h0, c0)
    yf, gf = _loss_and_grads(fast, x, h0, c0)
    np.testing.assert_allclose(yf.numpy(), yk.numpy(), atol=1e-5)
    names = ["x", "h0", "c0", "kernel", "recurrent_kernel", "bias"]
    for name, a, b in zip(names, gf, gk):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, err_msg=name)


def test_initial_weights_follow_keras_conventions():
    layer = FastLSTM(4)
    layer(tf.zeros([1, 2, 3]))
    np.testing.assert_array_equal(layer.bias.numpy(), [0] * 4 + [1] * 4 + [0] * 8)  # forget-gate bias 1
    rk = layer.recurrent_kernel.numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-5)  # orthogonal rows
