"""`realness`: how real a tune looks to a discriminator trained in the loop against the policy's own tunes.

SeqGAN (Yu et al. 2017) trained policy-gradient generators on music against a discriminator's "probability
real"; GAPT (2025) adds one to RL fine-tuning to stop reward hacking. Here the discriminator is a small
TensorFlow network (characters -> embedding -> 1-D convolutions -> max over the tune -> logit) trained on real
tunes (label 1) against the last `memory` tunes it was asked to score (label 0: during fine-tuning those are the
policy's), retrained every `retrain_every` scored tunes, so it keeps up with the policy as the policy learns to
fool it. A tune is scored before the discriminator trains on it. Until `warmup` tunes have been seen it has no
opinion and scores 0.5 (a constant reward teaches nothing). KL control and the gates apply to it as to every
reward.

The built-in `realness` is one discriminator per process with the defaults below, against the real tunes of the
reward context (`real_tunes`: in `finetune`, the tunes the pretrained model learned from), else the ABC
collections of music21's corpus. For other settings, make your own and name it by path:

    # my_rewards.py
    from rlmusic.rewards.discriminator import Discriminator
    realness_fast = Discriminator(retrain_every=128, memory=256)

    python -m rlmusic finetune --set 'rewards={my_rewards:realness_fast: 1.0, valid: 1.0}'

Its weights are not checkpointed: a resumed run trains a new one from the policy's next `warmup` tunes. It is
measured against the realness metrics of `evaluate` (a different classifier: scikit-learn on n-grams and
features) in docs/evaluation.md.

`realness_odds` is the guard built from those same scikit-learn classifiers instead (`OddsGuard`): their log-odds,
refit in the loop, weighted into the mix as a charge for drifting from the corpus.
"""

from __future__ import annotations

import threading

import numpy as np

from rlmusic.rewards.mix import per_real_tunes, real_tunes
from rlmusic.rewards.registry import register

WIDTH = 128  # characters are their code points, clipped: the discriminator needs no vocabulary of its own


class Discriminator:
    """Probability that a tune is real under a discriminator retrained against the tunes it scores."""

    def __init__(self, real: list[str] | None = None, retrain_every: int = 256, memory: int = 512,
                 length: int = 512, epochs: int = 2, warmup: int = 64, seed: int = 0):
        self._real = real
        self.retrain_every, self.memory, self.length = retrain_every, memory, length
        self.epochs, self.warmup = epochs, warmup
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.recent: list[str] = []
        self.since = 0
        self.model = None
        self.trained = 0  # times trained (for tests and logs)

    @property
    def real(self) -> list[str]:
        if self._real is None:  # the default corpus, read once, when first needed
            from rlmusic.corpus import DEFAULT_SOURCES, load_corpus

            self._real = load_corpus(DEFAULT_SOURCES).tunes
        return self._real

    def encode(self, tunes: list[str]) -> np.ndarray:
        """[N, length] character codes (1..WIDTH-1, 0 = padding), the X: line dropped (a number, not music)."""
        out = np.zeros((len(tunes), self.length), np.int32)
        for i, tune in enumerate(tunes):
            body = "\n".join(line for line in tune.splitlines() if not line.startswith("X:"))[:self.length]
            out[i, :len(body)] = np.minimum([ord(c) for c in body], WIDTH - 1) if body else []
        return out

    def _build(self):
        from rlmusic._tf import tf

        init = tf.keras.initializers.GlorotUniform(seed=self.seed)
        self.model = tf.keras.Sequential([
            tf.keras.layers.Embedding(WIDTH, 16),
            tf.keras.layers.Conv1D(64, 5, padding="same", activation="relu", kernel_initializer=init),
            tf.keras.layers.Conv1D(64, 5, padding="same", activation="relu", dilation_rate=4,
                                   kernel_initializer=init),
            tf.keras.layers.GlobalMaxPooling1D(),
            tf.keras.layers.Dense(1, kernel_initializer=init),
        ])
        self.optimizer = tf.keras.optimizers.Adam(1e-3)

        @tf.function(reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)[:, 0]
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
            return loss

        self._step = step
        self._logits = tf.function(lambda x: self.model(x, training=False)[:, 0], reduce_retracing=True)

    def train(self) -> float:
        """Some passes over the recent tunes (label 0) and as many real ones drawn afresh (label 1); the loss."""
        if self.model is None:
            self._build()
        real = [self.real[i] for i in self.rng.choice(len(self.real), size=len(self.recent))]
        x = self.encode(self.recent + real)
        y = np.array([0.0] * len(self.recent) + [1.0] * len(real), np.float32)
        loss = 0.0
        for _ in range(self.epochs):
            order = self.rng.permutation(len(x))
            for start in range(0, len(x), 64):
                rows = order[start:start + 64]
                loss = float(self._step(x[rows], y[rows]))
        self.trained += 1
        return loss

    def probability_real(self, tunes: list[str]) -> np.ndarray:
        if self.model is None:
            return np.full(len(tunes), 0.5)
        return 1.0 / (1.0 + np.exp(-np.asarray(self._logits(self.encode(tunes)), np.float64)))

    def __call__(self, tunes: list[str], **context) -> list[float]:
        if self._real is None:  # made without its real tunes: the context's (finetune's), else the default corpus
            self._real = real_tunes(context)
        scores = self.probability_real(tunes)  # before it learns from these tunes
        self.recent = (self.recent + list(tunes))[-self.memory:]
        self.since += len(tunes)
        if len(self.recent) >= self.warmup and (self.model is None or self.since >= self.retrain_every):
            self.train()
            self.since = 0
        return [float(s) for s in scores]


class OddsGuard:
    """The log-odds that a tune is real under two linear discriminators refit against the tunes it scores.

    Where `Discriminator` is a network that keeps up with the policy, this is the pair of classifiers `evaluate`
    measures realness with (rlmusic/realness.py: character 1-5-grams with TF-IDF, and the scanner's musical
    features, each a logistic regression), refit every `refit_every` scored tunes on the last `memory` of them
    (label 0) against as many real tunes drawn afresh (label 1). A tune's score is the two views' mean log-odds
    of "real", clipped to +-`clip` and mapped linearly onto [0, 1] (0.5: the classifiers cannot tell).

    Why log-odds: a calibrated classifier's log-odds is log p_real(x) / p_policy(x), so its mean over the
    policy's tunes is minus the KL from the policy's distribution to the corpus' in the classifiers' view
    (GAIL's and AIRL's reward). Weighted into the mix it is a penalty for every step away from the tradition that
    the classifiers can see, against whatever the other rewards pay for it; the probability `realness` returns
    flattens near 0 and 1, where the gradient is needed most. The text view's C is `text_c` (1 by default,
    smoother than evaluate's 10: a reward must not swing with one fit's noise). Until `warmup` tunes are seen it
    scores 0.5.
    """

    def __init__(self, real: list[str] | None = None, memory: int = 256, refit_every: int = 64,
                 warmup: int = 64, clip: float = 3.0, text_c: float = 1.0, seed: int = 0):
        self._real = real
        self.memory, self.refit_every, self.warmup, self.clip = memory, refit_every, warmup, clip
        self.text_c = text_c  # evaluate's text view uses 10: sharper, noisier log-odds
        self.rng = np.random.default_rng(seed)
        self.recent: list[str] = []
        self.since = 0
        self.views = None  # (text pipeline, feature pipeline) once fitted
        self.fitted = 0
        self.lock = threading.Lock()  # environments may score from several threads

    real = Discriminator.real

    def fit(self) -> None:
        from rlmusic.realness import classifiers, feature_matrix, normalise

        real = [self.real[i] for i in self.rng.choice(len(self.real), size=len(self.recent))]
        tunes = self.recent + real
        y = np.array([0] * len(self.recent) + [1] * len(real))
        text, features = classifiers(self.text_c)
        text.fit([normalise(t) for t in tunes], y)
        features.fit(feature_matrix(tunes), y)
        self.views = (text, features)
        self.fitted += 1

    def log_odds(self, tunes: list[str], scans=None) -> np.ndarray:
        """The two views' mean log-odds of "real" (0 before the first fit)."""
        if self.views is None:
            return np.zeros(len(tunes))
        from rlmusic.realness import feature_matrix, normalise

        text, features = self.views
        return 0.5 * (text.decision_function([normalise(t) for t in tunes])
                      + features.decision_function(feature_matrix(tunes, scans)))

    def __call__(self, tunes: list[str], **context) -> list[float]:
        with self.lock:
            if self._real is None:  # made without its real tunes: the context's (finetune's), else the default corpus
                self._real = real_tunes(context)
            odds = np.clip(self.log_odds(tunes, context.get("scans")), -self.clip, self.clip)
            self.recent = (self.recent + list(tunes))[-self.memory:]
            self.since += len(tunes)
            if len(self.recent) >= self.warmup and (self.views is None or self.since >= self.refit_every):
                self.fit()
                self.since = 0
        return [float(0.5 + o / (2 * self.clip)) for o in odds]


_REALNESS: dict = {}  # one guard per process and set of real tunes (rlmusic.rewards.mix.per_real_tunes)
_ODDS: dict = {}


@register("realness")
def realness(tunes: list[str], **context) -> list[float]:
    """Probability a tune is real under a discriminator retrained every 256 tunes against the tunes scored, in [0, 1].

    Learned, not a rule: 0.5 for the first 64 tunes, then the discriminator's sigmoid. Real means the context's
    `real_tunes` (in `finetune`: the pretrained model's training tunes), else the default collections. Example:
    after it has scored 64 tunes that hammer one note (`DDDD DDDD|` x 6), such a tune scores near 0 and a
    scale-wise real reel near 1 (tests/test_discriminator.py).
    """
    return per_real_tunes(_REALNESS, context, Discriminator)(tunes, **context)


@register("realness_odds")
def realness_odds(tunes: list[str], **context) -> list[float]:
    """The log-odds that a tune is real under linear discriminators (n-grams, musical features) refit every 64
    tunes against the last 256 scored, clipped to +-3 and mapped onto [0, 1].

    The realness guard: its mean over the policy's tunes is minus the classifiers' estimate of the KL from the
    policy to the corpus. Real means the context's `real_tunes` (in `finetune`: the pretrained model's training
    tunes), else the default collections. 0.5 until 64 tunes are seen. Example: after 64 tunes that hammer one
    note, such a tune scores near 0 and a scale-wise real reel near 1 (tests/test_discriminator.py).
    """
    return per_real_tunes(_ODDS, context, OddsGuard)(tunes, **context)
