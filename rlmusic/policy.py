"""The pretrained character model as a tf-agents policy network, and the KL-control reward shaping.

`CharPolicyNetwork` wraps a `CharLSTM` (the very same layer objects: fine-tuning updates the pretrained weights,
nothing is copied by hand) as a tf-agents `Network` that returns a categorical distribution over the next
character. Its state is the model's (the LSTM's (h, c) per layer, and the attention window if the model has
one); where a step starts a new episode the state is set to the primed state (the model's state after the
primer), also in the middle of a training sequence, so tunes collected back to back never leak into each other.

With masks (an environment with constrain="syntax": observations {"char", "mask"}), the network's distribution
is the model's renormalised over the allowed characters: the logits of the others are set to MASKED. tf-agents
records these logits with each action, so PPO's probability ratios, its entropy and the KL to the prior (masked
the same way, `sequence_log_probs`) are all over the allowed characters.
"""

from __future__ import annotations

from rlmusic._tf import quiet_import, tf
from rlmusic.sample import filter_logits

quiet_import("tf_agents")
import tensorflow_probability as tfp  # noqa: E402
from tf_agents.networks import network  # noqa: E402
from tf_agents.specs import tensor_spec  # noqa: E402
from tf_agents.trajectories import time_step as ts  # noqa: E402


class CharPolicyNetwork(network.Network):
    """`primer_ids`: the ids of the text every episode starts with, but its last character (which the
    environment gives as the first observation). At a FIRST step the state is the model's state after reading
    them, as when `sample` starts from a primer; with no primer it is zero."""

    def __init__(self, model, primer_ids=(), name: str = "CharPolicyNetwork", masked: bool = False):
        char_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, model.vocab_size - 1)
        spec = char_spec if not masked else {"char": char_spec,
                                             "mask": tensor_spec.TensorSpec((model.vocab_size,), tf.bool)}
        super().__init__(input_tensor_spec=spec, state_spec=model.state_spec(), name=name)
        self.model = model
        self.primer_ids = tf.constant(list(primer_ids), tf.int32)

    def logits(self, observations, step_type, network_state, training=False):
        """Logits [B, V] (one step) or [B, T, V] (sequences), masked where the observations carry masks, and the
        new state."""
        chars, mask = split_observation(observations)
        primed = primed_state(self.model, self.primer_ids)
        if chars.shape.rank == 1:
            state = _reset(network_state, tf.equal(step_type, ts.StepType.FIRST), primed)
            logits, state = self.model(chars[:, None], state, training=training)
            return apply_mask(logits[:, 0], mask), state
        logits, state = _unroll(self.model, chars, step_type, network_state, primed, training)
        return apply_mask(logits, mask), state

    def call(self, observations, step_type=None, network_state=(), training=False):
        chars, _ = split_observation(observations)
        if step_type is None:
            step_type = tf.zeros_like(chars)
        if not network_state:
            network_state = self.model.initial_state(tf.shape(chars)[0])
        logits, state = self.logits(observations, step_type, network_state, training)
        return tfp.distributions.Categorical(logits=logits, dtype=tf.int32), state


MASKED = -1e9
"""The logit of a character the grammar does not allow: exp(MASKED - any real logit) is 0 in float32."""


def split_observation(observations):
    """(character ids, mask or None) of observations with or without masks."""
    if isinstance(observations, dict):
        return observations["char"], observations["mask"]
    return observations, None


def apply_mask(logits, mask):
    """`logits` with the characters `mask` forbids set to MASKED (None: unchanged)."""
    return logits if mask is None else tf.where(mask, logits, MASKED)


def primed_state(model, primer_ids):
    """The model's state (batch 1) after reading `primer_ids` from a zero state."""
    state = model.initial_state(1)
    if primer_ids.shape[0]:
        _, state = model(primer_ids[None, :], state)
    return state


def _reset(state, first, primed):
    """`state` with the rows where `first` is true replaced by `primed` (batch 1, broadcast)."""
    def pick(s, p):
        return tf.where(tf.reshape(first, [-1] + [1] * (s.shape.rank - 1)), p, s)

    return tf.nest.map_structure(pick, state, primed)


def _unroll(model, observations, step_type, state, primed, training=False):
    """Run [B, T] through the model, the state set to `primed` at every FIRST step.

    When episodes start only in the first column (how rlmusic.finetune collects: one tune per row, then
    padding), that is one whole-sequence call, which runs the fused LSTM kernel and its fast backward pass;
    otherwise (episodes starting mid-sequence) it steps through time, resetting rows where they start."""
    first = tf.equal(step_type, ts.StepType.FIRST)

    def whole():
        return model(observations, _reset(state, first[:, 0], primed), training=training)

    def stepwise():
        steps = tf.shape(observations)[1]
        out = tf.TensorArray(tf.float32, size=steps)

        def body(t, state, out):
            state = _reset(state, first[:, t], primed)
            logits, state = model(observations[:, t:t + 1], state, training=training)
            return t + 1, state, out.write(t, logits[:, 0])

        _, last, out = tf.while_loop(lambda t, *_: t < steps, body, [tf.constant(0), state, out])
        return tf.transpose(out.stack(), [1, 0, 2]), last

    return tf.cond(tf.reduce_any(first[:, 1:]), stepwise, whole)


def sequence_log_probs(model, observations, actions, step_type, primer_ids=()):
    """log p(a_t | s_t) under `model` for trajectories [B, T] (state primed at FIRST steps), and the logits; with
    masks in the observations, of the model renormalised over the allowed characters."""
    chars, mask = split_observation(observations)
    primed = primed_state(model, tf.constant(list(primer_ids), tf.int32))
    logits, _ = _unroll(model, chars, step_type, model.initial_state(tf.shape(chars)[0]), primed)
    logits = apply_mask(logits, mask)
    return -tf.nn.sparse_softmax_cross_entropy_with_logits(actions, logits), logits


def nucleus_log_probs(logits, actions, top_p: float, tail: float):
    """log p'(a_t) for p' = (1 - tail) x nucleus(p) + tail x p, where p = softmax(logits) [B, T, V] and
    nucleus(p) is p cut to its smallest set of most likely characters reaching `top_p`, renormalised (the same cut
    as sampling with --top-p). Characters outside the nucleus keep log p + log(tail)."""
    vocab = tf.shape(logits)[-1]
    flat = tf.reshape(logits, [-1, vocab])
    in_nucleus = tf.reshape(filter_logits(flat, 1.0, 0, top_p) > -1e8, tf.shape(logits))
    logp = tf.nn.log_softmax(logits)
    mass = tf.reduce_sum(tf.where(in_nucleus, tf.exp(logp), 0.0), axis=-1)  # [B, T], in (0, 1]
    logp_a = tf.gather(logp, actions, batch_dims=2)
    kept = tf.gather(in_nucleus, actions, batch_dims=2)
    return logp_a + tf.math.log(tf.where(kept, (1.0 - tail) / mass + tail, tail))


def kl_shaped_rewards(task_rewards, logp_policy, logp_prior, beta: float):
    """Per-token reward of KL-control (Sequence Tutor, RLHF): r_t = task_t - beta * (log pi - log p_prior).

    Summed over a tune, the penalty is beta times a sample estimate of KL(pi || prior) for that tune, so the
    policy gains reward only where the tune gains more than it departs from what the pretrained model would write.
    """
    return task_rewards - beta * (logp_policy - logp_prior)
