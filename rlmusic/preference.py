"""A reward learned from a listener's choices: Bradley-Terry over what the score shows and the network hears.

    python -m rlmusic reward-model --preferences DIR/preferences.jsonl --out RM [--checkpoint pretrained]
    python -m rlmusic finetune --set rewards.preference=1.0 --set preference_model=RM

A tune's features are one of three views (`features`):

- "network": the pretrained network's top-layer outputs averaged over the tune's characters: what the model that
  writes the tunes "hears" in one;
- "music": what a musician reads off the score (`music_features`): the realness discriminator's feature view
  (pitch classes from the tonic, intervals, note lengths, range, repeat signs, strains, mode, meter), the scale
  degrees the strains end on (cadences) and how many bars come back within their strain (repeats, sequences);
- "both" (the default): the two side by side.

Measured with a synthetic listener who prefers cadences on the tonic and bars that come back (benchmarks/
preferences.py, docs/measurements.md): the music view ranks held-out pairs as the listener does 95 % of the time,
both views 88 %, the network view alone 61 %: whether a strain ends on the tonic, the listener's main criterion,
is one feature of the music view and no simple direction in the network's averaged outputs.

The probability that a listener prefers tune a to tune b is
sigmoid(w . (f(a) - f(b))) (Bradley and Terry 1952, as the reward models of RLHF), a "no preference" a target of
1/2. w is fitted in TensorFlow (logistic loss with an L2 penalty, Adam on the whole set) on 80 % of the pairs; the
held-out accuracy (on the pairs of the other 20 % that have a winner) is reported, then w is refitted on all pairs.

RM/reward_model.json holds the checkpoint the features come from, its vocabulary's fingerprint, the features'
scaling and w: JSON, no pickle. The reward of a tune is w . f(tune) after scaling (a score whose differences are
log-odds of preference), the same number `PreferenceModel.score` returns.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rlmusic.errors import UserError
from rlmusic.files import atomic_write_text

MODEL_FILE = "reward_model.json"


FEATURE_VIEWS = ("both", "network", "music")


def tune_features(model, vocab, tunes: list[str], view: str = "both", scans=None) -> np.ndarray:
    """[N, D]: the features of each tune in the view named (see the module docstring); `scans`, the tunes' scans
    if the caller has them (a reward's context), spares the music view scanning them again."""
    parts = []
    if view in ("network", "both"):
        parts.append(network_features(model, vocab, tunes))
    if view in ("music", "both"):
        parts.append(music_features(tunes, scans))
    if not parts:
        raise UserError(f"features {view!r}: not one of {', '.join(FEATURE_VIEWS)}")
    return np.concatenate(parts, axis=1)


def music_features(tunes: list[str], scans=None) -> np.ndarray:
    """[N, D]: the realness discriminator's feature view of each tune, then the share of its strain ends on each
    scale degree (12 bins, semitones above the tonic), its last note's degree (one-hot), and the shares of bars
    after each strain's first that repeat an earlier bar of the strain, at its pitch or moved (the same intervals)."""
    from rlmusic.abc import scan
    from rlmusic.realness import feature_vector
    from rlmusic.structure import strain_end_pitches, strains

    rows = []
    for tune, s in zip(tunes, scans or [scan(t) for t in tunes]):
        tonic = s.key.tonic if s.key is not None else 0
        ends = [(p - tonic) % 12 for p in strain_end_pitches(s, tune)]
        degrees = np.bincount(ends, minlength=12) / max(1, len(ends))
        last = np.zeros(12)
        if ends:
            last[ends[-1]] = 1.0
        same = moved = total = 0
        for figures in strains(s, tune):
            shapes = [tuple(np.diff(f)) for f in figures]
            for i in range(1, len(figures)):
                same += figures[i] in figures[:i]
                moved += shapes[i] in shapes[:i]
                total += 1
        rows.append(np.concatenate([feature_vector(s, tune), degrees, last,
                                    [same / max(1, total), moved / max(1, total)]]))
    return np.array(rows, np.float64).reshape(len(tunes), -1)


def network_features(model, vocab, tunes: list[str], batch: int = 32) -> np.ndarray:
    """[N, units]: each tune's top-layer LSTM outputs, averaged over its characters (padding left out)."""
    from rlmusic._tf import tf

    out = []
    for start in range(0, len(tunes), batch):
        tokens, lengths = vocab.encode_padded(tunes[start:start + batch], what="a tune of the preferences")
        mask = (np.arange(tokens.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
        x = model.embedding(tf.constant(tokens))
        for lstm in model.lstms:
            x, _, _ = lstm(x, training=False)
        summed = tf.reduce_sum(x * mask[:, :, None], axis=1).numpy()
        out.append(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0))
    return np.concatenate(out) if out else np.zeros((0, model.cfg.units), np.float32)


@dataclass
class PreferenceModel:
    """w . ((f - mean) / std): the learned score of a tune (see the module docstring)."""

    checkpoint: str
    vocab_sha256: str
    mean: list[float]
    std: list[float]
    w: list[float]
    pairs: int = 0
    heldout_pairs: int = 0
    heldout_accuracy: float | None = None
    l2: float = 1e-2
    features: str = "network"
    """The feature view (FEATURE_VIEWS); "network" in files written before there was a choice."""
    _net: tuple | None = field(default=None, repr=False, compare=False)

    def scores_of(self, features: np.ndarray) -> np.ndarray:
        return ((features - np.array(self.mean)) / np.array(self.std)) @ np.array(self.w)

    def score(self, tunes: list[str], scans=None) -> list[float]:
        """The learned score of each tune (the network is loaded on first use)."""
        if self._net is None:
            self._net = load_features_model(Path(self.checkpoint), self.vocab_sha256)
        model, vocab = self._net
        return [float(s) for s in self.scores_of(tune_features(model, vocab, tunes, self.features, scans))]

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        atomic_write_text(folder / MODEL_FILE, json.dumps(data, indent=1))
        return folder / MODEL_FILE

    @classmethod
    def load(cls, folder: str | Path) -> "PreferenceModel":
        path = Path(folder) / MODEL_FILE if Path(folder).is_dir() else Path(folder)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            model = cls(**{k: data[k] for k in ("checkpoint", "vocab_sha256", "mean", "std", "w")},
                        **{k: data[k] for k in ("pairs", "heldout_pairs", "heldout_accuracy", "l2", "features")
                           if k in data})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"preference_model {folder}: not a reward model of `rlmusic reward-model` "
                            f"({exc.__class__.__name__}: {exc})") from exc
        if model.features not in FEATURE_VIEWS:
            raise UserError(f"preference_model {folder}: features {model.features!r} is not one of "
                            f"{', '.join(FEATURE_VIEWS)}")
        if not len(model.mean) == len(model.std) == len(model.w):
            raise UserError(f"preference_model {folder}: mean, std and w differ in length")
        return model


def load_features_model(checkpoint: Path, fingerprint: str = ""):
    """(model, vocab) of the run the features come from, checked to be the vocabulary they were fitted with."""
    from rlmusic.rundir import load_model, vocab_fingerprint

    model, vocab, _ = load_model(checkpoint)
    if fingerprint and vocab_fingerprint(vocab) != fingerprint:
        raise UserError(f"{checkpoint}: not the vocabulary the reward model's features were computed with")
    return model, vocab


def pair_targets(choices: list[dict]) -> tuple[list[str], list[str], np.ndarray]:
    """(tunes a, tunes b, P(a preferred)): 1 for "a", 0 for "b", 1/2 for "none"."""
    target = {"a": 1.0, "b": 0.0, "none": 0.5}
    return [c["a"] for c in choices], [c["b"] for c in choices], np.array([target[c["choice"]] for c in choices])


def fit_weights(diff: np.ndarray, target: np.ndarray, l2: float, steps: int = 500, seed: int = 0) -> np.ndarray:
    """w minimising the mean logistic loss of sigmoid(diff @ w) against `target`, plus l2 x |w|^2 (TensorFlow,
    Adam, whole batch)."""
    from rlmusic._tf import tf

    tf.random.set_seed(seed)
    w = tf.Variable(tf.zeros([diff.shape[1]], tf.float64))
    x, y = tf.constant(diff, tf.float64), tf.constant(target, tf.float64)
    opt = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = tf.linalg.matvec(x, w)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits)) + l2 * tf.reduce_sum(w * w)
        opt.apply_gradients([(tape.gradient(loss, w), w)])
        return loss

    for _ in range(steps):
        step()
    return w.numpy()


def accuracy(diff: np.ndarray, target: np.ndarray, w: np.ndarray) -> tuple[float | None, int]:
    """Share of the pairs with a winner whose winner the model scores higher, and how many such pairs."""
    decided = target != 0.5
    if not decided.any():
        return None, 0
    right = (diff[decided] @ w > 0) == (target[decided] > 0.5)
    return float(right.mean()), int(decided.sum())


def train(choices: list[dict], checkpoint: Path, l2: float = 1e-2, heldout: float = 0.2, seed: int = 0,
          features: str = "both", log=print) -> PreferenceModel:
    """The reward model of a list of choices (rlmusic.rate's lines): held-out accuracy measured, then refit on all."""
    from rlmusic.rundir import vocab_fingerprint

    if len(choices) < 2:
        raise UserError(f"{len(choices)} choices: a reward model needs at least 2")
    model, vocab = load_features_model(checkpoint)
    a, b, _ = pair_targets(choices)
    log(f"features ({features}) of {2 * len(choices)} tunes from {checkpoint}")
    fa, fb = tune_features(model, vocab, a, features), tune_features(model, vocab, b, features)
    return fit(choices, fa, fb, checkpoint, vocab_fingerprint(vocab), l2=l2, heldout=heldout, seed=seed,
               features=features, log=log)


def fit(choices: list[dict], fa: np.ndarray, fb: np.ndarray, checkpoint: Path, fingerprint: str, l2: float = 1e-2,
        heldout: float = 0.2, seed: int = 0, features: str = "both", log=print) -> PreferenceModel:
    """`train` on features already computed (fa, fb: of each choice's tunes a and b, in the view `features`)."""
    _, _, target = pair_targets(choices)
    both = np.concatenate([fa, fb])
    mean, std = both.mean(axis=0), both.std(axis=0) + 1e-6
    diff = (fa - mean) / std - (fb - mean) / std
    order = random.Random(seed).sample(range(len(choices)), len(choices))
    cut = max(1, int(round(len(choices) * (1 - heldout)))) if heldout > 0 else len(choices)
    fit_on, rest = order[:cut], order[cut:]
    acc, n_heldout = (None, 0)
    if rest:
        acc, n_heldout = accuracy(diff[rest], target[rest], fit_weights(diff[fit_on], target[fit_on], l2, seed=seed))
        log(f"held-out accuracy {acc if acc is None else round(acc, 3)} on {n_heldout} decided pairs "
            f"(fitted on {len(fit_on)})")
    w = fit_weights(diff, target, l2, seed=seed)
    return PreferenceModel(str(Path(checkpoint).resolve()), fingerprint, mean.tolist(), std.tolist(), w.tolist(),
                           pairs=len(choices), heldout_pairs=n_heldout, heldout_accuracy=acc, l2=l2,
                           features=features)
