import numpy as np
import pytest

from rlmusic._tf import tf
from rlmusic.model import ModelConfig, build_model
from rlmusic.vocab import Vocab
from rlmusic.errors import UserError


@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_whole_sequence(layers):
    tf.keras.utils.set_random_seed(0)
    model = build_model(11, ModelConfig(embedding_dim=6, units=10, layers=layers))
    tokens = np.random.default_rng(0).integers(0, 11, size=(3, 17)).astype(np.int32)
    whole, _ = model(tokens)
    states = model.initial_state(3)
    steps = []
    for t in range(tokens.shape[1]):
        logits, states = model(tokens[:, t:t + 1], states)
        steps.append(logits[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), whole.numpy(), atol=1e-5)


def test_state_is_carried():
    """Feeding the second half with the first half's state equals feeding the whole."""
    model = build_model(7, ModelConfig(embedding_dim=4, units=8))
    tokens = np.arange(14, dtype=np.int32).reshape(1, 14) % 7
    whole, _ = model(tokens)
    _, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], state)
    np.testing.assert_allclose(second.numpy(), whole.numpy()[:, 6:], atol=1e-5)
    fresh, _ = model(tokens[:, 6:])  # without the state the logits differ: the state matters
    assert not np.allclose(fresh.numpy(), whole.numpy()[:, 6:], atol=1e-4)


def test_vocab_round_trip():
    text = "X:1\nT:Lied über\nK:G\nGAB|"
    vocab = Vocab.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text
    again = Vocab.from_json(vocab.to_json())
    assert again == vocab and again.chars == sorted(set(text))


def test_vocab_refuses_unknown_characters():
    vocab = Vocab.from_text("ABC")
    with pytest.raises(UserError, match="'Z'"):
        vocab.encode("AZ", what="primer")


def test_corrupt_vocab_json():
    with pytest.raises(UserError, match="corrupt vocabulary"):
        Vocab.from_json('{"letters": 3}')
