"""rlmusic/vocab.py: characters to ids and back, one batch padded."""

import numpy as np
import pytest

from rlmusic.errors import UserError
from rlmusic.vocab import Vocab

VOCAB = Vocab(list("\nABC|"))


@pytest.mark.parametrize("texts,width,shape,lengths", [
    (["AB", "ABC|"], 1, (2, 4), [2, 4]),  # padded to the longest
    (["A"], 2, (1, 2), [1]),              # and to the width asked at least
    ([], 1, (0, 1), []),                  # no texts: an empty batch
])
def test_encode_padded(texts, width, shape, lengths):
    ids, got = VOCAB.encode_padded(texts, width=width)
    assert ids.shape == shape and got.tolist() == lengths
    for row, text in zip(ids, texts):
        assert VOCAB.decode(row[:len(text)]) == text and not row[len(text):].any()  # zeros after each text


def test_encode_padded_names_what_it_read():
    with pytest.raises(UserError, match="a tune of mine has characters outside.*'x'"):
        VOCAB.encode_padded(["AB", "Ax"], what="a tune of mine")
