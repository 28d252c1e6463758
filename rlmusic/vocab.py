"""The character vocabulary: char <-> id, saved with every run as `vocab.json`.

A checkpoint is only meaningful with the vocabulary it was trained on (the embedding rows are its characters),
so runs carry it and refuse to mix with another.
"""

from __future__ import annotations

import json

import numpy as np

from rlmusic.errors import UserError


class Vocab:
    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("a vocabulary is a list of distinct single characters")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def unknown(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index})

    def encode(self, text: str, what: str = "text") -> np.ndarray:
        missing = self.unknown(text)
        if missing:
            raise UserError(f"{what} has characters outside the model's vocabulary: "
                            f"{', '.join(repr(c) for c in missing)}")
        return np.fromiter((self.index[c] for c in text), dtype=np.int32, count=len(text))

    def encode_padded(self, texts: list[str], what: str = "text", width: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(ids [B, W], lengths [B]) of the texts, zero-padded to the longest (and to `width` at least)."""
        encoded = [self.encode(t, what) for t in texts]
        lengths = np.array([len(x) for x in encoded], np.int32)
        ids = np.zeros((len(encoded), max(width, int(lengths.max(initial=0)))), np.int32)
        for i, x in enumerate(encoded):
            ids[i, :len(x)] = x
        return ids, lengths

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"chars": self.chars}, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text: str, where: str = "vocab.json") -> "Vocab":
        try:
            chars = json.loads(text)["chars"]
            vocab = cls(chars)
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{where}: corrupt vocabulary file (expected {{\"chars\": [...]}})") from None
        if len(vocab) < 2:
            raise UserError(f"{where}: corrupt vocabulary file (it holds {len(vocab)} characters; a model needs at least 2)")
        return vocab

    def diff(self, other: "Vocab") -> str:
        """A short human description of how two vocabularies differ."""
        added, removed = sorted(set(other.chars) - set(self.chars)), sorted(set(self.chars) - set(other.chars))
        parts = [f"{len(self)} vs {len(other)} chars"]
        if added:
            parts.append("new: " + " ".join(repr(c) for c in added[:10]))
        if removed:
            parts.append("missing: " + " ".join(repr(c) for c in removed[:10]))
        return "; ".join(parts)
