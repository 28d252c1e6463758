"""Window attention: exactly the last N outputs are seen; step-wise equals whole-sequence; usable everywhere."""

import json

import numpy as np
import pytest

from rlmusic._tf import tf
from rlmusic.attention import WindowAttention
from rlmusic.model import ModelConfig, build_model


def randomised(model):
    """A model whose attention output is not zero (it starts at zero so a new model begins as the plain LSTM)."""
    model.attention.wo.assign(tf.random.normal(model.attention.wo.shape, stddev=0.5))
    return model


def test_each_position_sees_exactly_the_window_before_it():
    tf.keras.utils.set_random_seed(1)
    layer = WindowAttention(window=4)
    x = tf.random.normal([1, 12, 8])
    layer.build(x.shape)
    layer.wo.assign(tf.random.normal(layer.wo.shape))
    y, _ = layer(x, layer.initial_state(1))
    t = 9

    def y_t_after_changing(position):
        bumped = x.numpy().copy()
        bumped[0, position] += 3.0
        return layer(tf.constant(bumped), layer.initial_state(1))[0][0, t].numpy()

    # positions t-4 .. t-1 are in the window (t itself is the query and changes y through the residual too)
    for position in range(t - 4, t + 1):
        assert not np.allclose(y_t_after_changing(position), y[0, t].numpy(), atol=1e-6), position
    # position t-5 and earlier, and later ones, are not seen
    for position in [0, t - 6, t - 5, t + 1, 11]:
        np.testing.assert_allclose(y_t_after_changing(position), y[0, t].numpy(), atol=1e-6)


def test_a_fresh_attention_model_starts_as_the_plain_lstm():
    plain = build_model(11, ModelConfig(embedding_dim=6, units=10))
    attn = build_model(11, ModelConfig(embedding_dim=6, units=10, attention_window=5))
    for layer in ("embedding", "lstms", "head"):  # the same weights but the attention's
        for a, b in zip(tf.nest.flatten(getattr(attn, layer)), tf.nest.flatten(getattr(plain, layer))):
            for va, vb in zip(a.weights, b.weights):
                va.assign(vb)
    tokens = np.random.default_rng(0).integers(0, 11, size=(2, 9)).astype(np.int32)
    np.testing.assert_allclose(attn(tokens)[0].numpy(), plain(tokens)[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("layers,window", [(1, 5), (2, 3), (1, 40)])
def test_step_by_step_equals_whole_sequence(layers, window):
    tf.keras.utils.set_random_seed(0)
    model = randomised(build_model(11, ModelConfig(embedding_dim=6, units=10, layers=layers,
                                                   attention_window=window)))
    tokens = np.random.default_rng(0).integers(0, 11, size=(3, 17)).astype(np.int32)
    whole, _ = model(tokens)
    states = model.initial_state(3)
    steps = []
    for t in range(tokens.shape[1]):
        logits, states = model(tokens[:, t:t + 1], states)
        steps.append(logits[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), whole.numpy(), atol=1e-5)
    # a primer read as a sequence, then steps (how `sample` uses it) gives the same again
    logits, states = model(tokens[:, :7])
    rest = []
    for t in range(7, 17):
        step_logits, states = model(tokens[:, t:t + 1], states)
        rest.append(step_logits[:, 0])
    np.testing.assert_allclose(np.stack(rest, 1), whole.numpy()[:, 7:], atol=1e-5)


def test_the_window_matters():
    """With the attention's weights the logits differ from the same model with attention switched off."""
    tf.keras.utils.set_random_seed(0)
    model = randomised(build_model(11, ModelConfig(embedding_dim=6, units=10, attention_window=5)))
    tokens = np.random.default_rng(0).integers(0, 11, size=(2, 9)).astype(np.int32)
    with_attention, _ = model(tokens)
    model.attention.wo.assign(tf.zeros_like(model.attention.wo))
    without, _ = model(tokens)
    assert not np.allclose(with_attention.numpy(), without.numpy(), atol=1e-4)


def test_an_attention_model_pretrains_samples_and_finetunes(tmp_path, capsys):
    """The state carries the window, so sample, the environment and finetune take an attention model as is."""
    from conftest import DATA, TINY, cli, set_args

    pre = tmp_path / "pre"
    code, _, err = cli("pretrain", "--data", DATA, "--out", pre, *set_args(TINY + ["model.attention_window=8"]),
                       capsys=capsys)
    assert code == 0, err
    saved = json.loads((pre / "metrics.jsonl").read_text().splitlines()[-1])
    assert saved["val_bits_per_char"] > 0
    code, stdout, err = cli("sample", "--checkpoint", pre, "--num", 3, "--max-length", 50, "--primer",
                            "X:1\nT:t\nM:4/4\nK:D\n", capsys=capsys)
    assert code == 0 and stdout.count("K:D") == 3, err
    ft = tmp_path / "ft"
    code, _, err = cli("finetune", "--checkpoint", pre, "--config", "tiny", "--out", ft, capsys=capsys)
    assert code == 0, err
    assert "attention_window: 8" in (ft / "config.yaml").read_text()
    code, stdout, err = cli("sample", "--checkpoint", ft, "--num", 2, "--max-length", 40, capsys=capsys)
    assert code == 0 and stdout.count("X:1") == 2, err
