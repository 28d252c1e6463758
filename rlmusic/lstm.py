"""An LSTM layer with a hand-written backward pass, for fast training on CPUs.

Keras' LSTM on a CPU runs a `while_loop` whose automatic gradient computes, at every time step, the weight
gradients of that step and adds them up: two weight-sized matrix products and a weight-sized accumulation per
step, each small and memory-bound. Here the backward loop carries only what truly depends on the next step (the
gradient of h and c), and the weight gradients are computed once at the end as two large matrix products over all
steps, which run near the machine's peak. The input projection x @ W is likewise one product for the whole window.

The weights are laid out as Keras' (gates i, f, c, o; kernel, recurrent_kernel, bias with forget bias 1), so
the results equal `tf.keras.layers.LSTM` with the same weights (a test checks values and gradients).
"""

from __future__ import annotations

from rlmusic._tf import tf


def _lstm_step(x, h, c, kernel, recurrent_kernel, bias):
    z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
    i, f, g, o = tf.split(z, 4, axis=1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def _lstm_sequence(x, h0, c0, kernel, recurrent_kernel, bias):
    """x [B, T, E] -> (outputs [B, T, U], h_T, c_T), with the custom gradient described above."""

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias):
        units = tf.shape(h0)[1]
        xt = tf.transpose(x, [1, 0, 2])  # time-major [T, B, E]
        steps, batch, width = tf.shape(xt)[0], tf.shape(xt)[1], tf.shape(xt)[2]
        flat_x = tf.reshape(xt, [-1, width])
        zx = tf.reshape(tf.matmul(flat_x, kernel) + bias, [steps, batch, 4 * units])

        def forward(t, h, c, hs, cs, gates):
            z = zx[t] + tf.matmul(h, recurrent_kernel)
            i, f, g, o = tf.split(z, 4, axis=1)
            i, f, o, g = tf.sigmoid(i), tf.sigmoid(f), tf.sigmoid(o), tf.tanh(g)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, tf.concat([i, f, g, o], 1))

        arrays = [tf.TensorArray(x.dtype, size=steps) for _ in range(3)]
        _, h_last, c_last, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < steps, forward, [tf.constant(0), h0, c0, *arrays])
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()
        outputs = tf.transpose(hs, [1, 0, 2])

        def grad(d_outputs, d_h_last, d_c_last):
            d_hs = tf.transpose(d_outputs, [1, 0, 2])
            d_h_last = tf.zeros_like(h0) if d_h_last is None else d_h_last
            d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
            c_prev = tf.concat([c0[None], cs[:-1]], 0)
            # Eigen's matmul with a transposed operand runs several times slower than a plain one at these
            # shapes, so every transpose is made explicit, once, outside the loop.
            recurrent_t = tf.transpose(recurrent_kernel)

            def backward(t, dh_next, dc_next, dzs):
                i, f, g, o = tf.split(gates[t], 4, axis=1)
                tanh_c = tf.tanh(cs[t])
                dh = d_hs[t] + dh_next
                dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
                dz = tf.concat([dc * g * i * (1 - i), dc * c_prev[t] * f * (1 - f),
                                dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], 1)
                return t - 1, tf.matmul(dz, recurrent_t), dc * f, dzs.write(t, dz)

            _, d_h0, d_c0, dzs = tf.while_loop(
                lambda t, *_: t >= 0, backward,
                [steps - 1, d_h_last, d_c_last, tf.TensorArray(x.dtype, size=steps)])
            dz = tf.reshape(dzs.stack(), [-1, 4 * units])
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, units])
            d_kernel = tf.matmul(tf.transpose(flat_x), dz)
            d_recurrent = tf.matmul(tf.transpose(h_prev), dz)
            d_bias = tf.reduce_sum(dz, 0)
            dx = tf.transpose(tf.reshape(tf.matmul(dz, tf.transpose(kernel)), [steps, batch, width]), [1, 0, 2])
            return dx, d_h0, d_c0, d_kernel, d_recurrent, d_bias

        return (outputs, h_last, c_last), grad

    return run(x, h0, c0, kernel, recurrent_kernel, bias)


class FastLSTM(tf.keras.layers.Layer):
    """Drop-in for `LSTM(units, return_sequences=True, return_state=True)`: call(x, initial_state) -> (y, h, c)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        width = int(input_shape[-1])
        u = self.units
        self.kernel = self.add_weight(name="kernel", shape=[width, 4 * u], initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=[u, 4 * u], initializer="orthogonal")

        def forget_bias_one(shape, dtype=None):
            return tf.concat([tf.zeros([u]), tf.ones([u]), tf.zeros([2 * u])], 0)

        self.bias = self.add_weight(name="bias", shape=[4 * u], initializer=forget_bias_one)
        super().build(input_shape)

    def call(self, x, initial_state=None, training=None):
        dtype = self.compute_dtype
        x = tf.cast(x, dtype)
        h0, c0 = self._start(x, initial_state)
        if x.shape[1] == 1:  # one step (sampling, RL rollouts): plain ops, no loop
            h, c = _lstm_step(x[:, 0], h0, c0, tf.cast(self.kernel, dtype), tf.cast(self.recurrent_kernel, dtype),
                              tf.cast(self.bias, dtype))
            return h[:, None], h, c
        outputs, h, c = _lstm_sequence(x, h0, c0, tf.cast(self.kernel, dtype),
                                       tf.cast(self.recurrent_kernel, dtype), tf.cast(self.bias, dtype))
        return outputs, h, c

    def _start(self, x, initial_state):
        """(h0, c0) in the compute dtype: the given state, or zeros."""
        if initial_state is None:
            zeros = tf.zeros([tf.shape(x)[0], self.units], self.compute_dtype)
            return zeros, zeros
        return tuple(tf.cast(s, self.compute_dtype) for s in initial_state)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class KerasLSTM(FastLSTM):
    """`FastLSTM`'s variables, run over sequences by Keras' own LSTM: on a GPU Keras selects the fused cuDNN kernel
    (tanh/sigmoid activations, no recurrent dropout, not unrolled: its documented conditions, which this layer
    meets); elsewhere Keras' generic loop. Checkpoints are interchangeable with FastLSTM's (the same variables at
    the same paths: the Keras layer is kept out of the layer's tracked objects), and so are the outputs (tested)."""

    def build(self, input_shape):
        super().build(input_shape)
        inner = tf.keras.layers.LSTM(self.units, return_sequences=True, return_state=True, dtype=self.dtype_policy,
                                     name=f"{self.name}_keras")
        cell = inner.cell
        # The Keras layer reads its cell's kernel/recurrent_kernel/bias: give it this layer's variables instead
        # of letting it create its own, and mark both built.
        cell.kernel, cell.recurrent_kernel, cell.bias = self.kernel, self.recurrent_kernel, self.bias
        cell.built = inner.built = True
        object.__setattr__(self, "_keras_lstm", inner)  # untracked: not a second path to the same variables

    def call(self, x, initial_state=None, training=None):
        if x.shape[1] == 1:  # one step: the plain ops of FastLSTM
            return super().call(x, initial_state, training)
        x = tf.cast(x, self.compute_dtype)
        outputs, h, c = self._keras_lstm(x, initial_state=list(self._start(x, initial_state)), training=training)
        return outputs, h, c
