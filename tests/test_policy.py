"""The policy network over sequences equals stepping it, with the primed state at every FIRST step."""

import numpy as np
import pytest

from rlmusic._tf import tf
from rlmusic.model import ModelConfig, build_model
from rlmusic.policy import CharPolicyNetwork, sequence_log_probs

FIRST, MID, LAST = 0, 1, 2


def step_by_step(net, obs, step_type):
    state = net.model.initial_state(obs.shape[0])
    out = []
    for t in range(obs.shape[1]):
        logits, state = net.logits(tf.constant(obs[:, t]), tf.constant(step_type[:, t]), state)
        out.append(logits.numpy())
    return np.stack(out, 1)


@pytest.mark.parametrize("window", [0, 4])
@pytest.mark.parametrize("layout", [
    "one episode per row",          # FIRST only in column 0: the fused whole-sequence path
    "episodes starting mid-row",    # a FIRST later in a row: the step-by-step path with resets
])
def test_sequence_logits_equal_stepping(window, layout):
    tf.keras.utils.set_random_seed(0)
    model = build_model(9, ModelConfig(embedding_dim=5, units=8, attention_window=window))
    if window:
        model.attention.wo.assign(tf.random.normal(model.attention.wo.shape, stddev=0.5))
    net = CharPolicyNetwork(model, primer_ids=[1, 2, 3])
    obs = np.random.default_rng(0).integers(0, 9, size=(3, 12)).astype(np.int32)
    step_type = np.full((3, 12), MID, np.int32)
    step_type[:, 0] = FIRST
    step_type[:, -1] = LAST
    if layout == "episodes starting mid-row":
        step_type[1, 5], step_type[1, 6] = LAST, FIRST
    whole, _ = net.logits(tf.constant(obs), tf.constant(step_type), model.initial_state(3))
    np.testing.assert_allclose(whole.numpy(), step_by_step(net, obs, step_type), atol=1e-5)
    # and the batched scoring pass of finetune agrees with both
    logp, _ = sequence_log_probs(model, tf.constant(obs), tf.constant(obs), tf.constant(step_type), [1, 2, 3])
    expected = tf.nn.log_softmax(whole, -1).numpy()
    np.testing.assert_allclose(logp.numpy(), np.take_along_axis(expected, obs[..., None], -1)[..., 0], atol=1e-5)


def test_the_primer_shapes_the_first_step():
    tf.keras.utils.set_random_seed(0)
    model = build_model(9, ModelConfig(embedding_dim=5, units=8))
    obs = tf.constant([[4, 5]], tf.int32)
    st = tf.constant([[FIRST, MID]], tf.int32)
    primed, _ = CharPolicyNetwork(model, primer_ids=[1, 2, 3]).logits(obs, st, model.initial_state(1))
    bare, _ = CharPolicyNetwork(model).logits(obs, st, model.initial_state(1))
    assert not np.allclose(primed.numpy(), bare.numpy(), atol=1e-4)


# KL-control to the prior's nucleus: p' = (1 - tail) x nucleus(p) + tail x p.
# p = [0.5, 0.3, 0.15, 0.05]; hand-computed p'(a) per case.
@pytest.mark.parametrize("top_p, tail, expected", [
    # top-p 0.8: the nucleus is {0, 1} (0.5 before the second, 0.8 before the third: not < 0.8), mass 0.8
    (0.8, 0.01, [0.99 * 0.5 / 0.8 + 0.005, 0.99 * 0.3 / 0.8 + 0.003, 0.0015, 0.0005]),
    # top-p 0.5: only the likeliest character (it alone reaches 0.5)
    (0.5, 0.1, [0.9 + 0.05, 0.03, 0.015, 0.005]),
    # top-p 0.9: all but the last (0.8 before the third, 0.95 before the last), mass 0.95
    (0.9, 0.01, [0.99 * 0.5 / 0.95 + 0.005, 0.99 * 0.3 / 0.95 + 0.003, 0.99 * 0.15 / 0.95 + 0.0015, 0.0005]),
    # top-p 1: everything is in the nucleus, p' = p
    (1.0, 0.01, [0.5, 0.3, 0.15, 0.05]),
])
def test_nucleus_log_probs(top_p, tail, expected):
    from rlmusic.policy import nucleus_log_probs

    logits = tf.math.log(tf.constant([[[0.3, 0.05, 0.5, 0.15]] * 4]))  # one row, 4 steps, shuffled order
    order = [2, 0, 3, 1]  # the characters by falling probability
    got = nucleus_log_probs(logits, tf.constant([order], tf.int32), top_p, tail).numpy()[0]
    np.testing.assert_allclose(np.exp(got), expected, rtol=1e-5)
    assert abs(sum(expected) - 1.0) < 1e-9  # p' is a distribution
