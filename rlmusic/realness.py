"""How far a set of tunes is from real ones as a whole: discriminators, feature distributions, copying.

Rule metrics (rlmusic/evaluate.py) can each be improved while the music drifts away from the tradition; these
compare a set of tunes with a set of real held-out tunes (the reference) all at once.

Discriminators (scikit-learn): can a classifier tell the tunes from the reference? Balanced sets (the smaller
size on both sides), stratified k-fold cross-validation, accuracy mean and standard deviation over the folds;
0.5 means indistinguishable. Both sides are normalised the same way first: the X: and T: lines go (a title is not
the music; the corpus' other free-text fields are gone already).
    text view      character 1-5-grams, TF-IDF, logistic regression
    feature view   the scanner's musical features (pitch classes relative to the tonic, intervals, note lengths,
                   notes per bar, bars, range, meter and mode, repeat signs and strains), standardised, logistic
                   regression

Feature distributions (Yang & Lerch 2018, "mgeval"): per tune, the scalar features of FEATURES; each set's
values are smoothed with a Gaussian kernel density estimate (scipy) and compared on a common grid: the overlap
area (1 = the same distribution, 0 = disjoint) and KL(tunes || reference) in nats. The note-length histogram is
compared pooled over each set (overlap and KL of the two histograms, add-one smoothed). Key modes and meters are
categorical: total-variation distance (0 = the same shares, 1 = disjoint).

Copying and diversity: a tune copies when it shares `copy_bars` (4) consecutive bars with a tune of the
training side (bars compared as their notes' pitches and durations, transposition not folded); an exact copy
has the same notes as a training tune throughout. Diversity: distinct bars / all bars among the tunes, and the
share of tunes whose notes equal an earlier tune's of the same set.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from rlmusic.abc import Scan, scan

FEATURES = ("pitch_range", "distinct_pitches", "mean_abs_interval", "notes_per_bar", "bars_per_tune",
            "mean_note_length")
LENGTH_BINS = (1 / 32, 1 / 16, 3 / 32, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 3 / 4, 1.0)  # whole notes
MODES = ("major", "minor", "dorian", "mixolydian", "other")
METERS = ("4/4", "C", "C|", "2/2", "6/8", "3/4", "2/4", "9/8", "12/8", "3/2", "other")


def normalise(tune: str) -> str:
    """The tune without its X: and T: lines: what the discriminators see of both sides."""
    return "\n".join(ln for ln in tune.split("\n") if not ln.startswith(("X:", "T:")))


def _mode(s: Scan) -> str:
    key = (s.fields.get("K") or "").strip().lower()
    for name, marks in (("minor", ("m", "min", "aeo")), ("dorian", ("dor",)), ("mixolydian", ("mix",))):
        rest = key[1:].lstrip("#b")
        if any(rest == mk or rest.startswith(mk) and not rest.startswith("maj") for mk in marks):
            return name
    return "major" if key and key[0] in "abcdefg" else "other"


def _meter(s: Scan) -> str:
    m = (s.fields.get("M") or "").strip()
    return m if m in METERS else "other"


def scalar_features(s: Scan) -> dict[str, float] | None:
    """The FEATURES of one tune (None without notes)."""
    mel = s.melody()
    if not mel:
        return None
    pitches = [n.pitch for n in mel]
    steps = np.abs(np.diff(pitches)) if len(pitches) > 1 else np.zeros(1)
    bars = max(1, len({n.bar for n in mel}))
    return {"pitch_range": float(max(pitches) - min(pitches)), "distinct_pitches": float(len(set(pitches))),
            "mean_abs_interval": float(steps.mean()), "notes_per_bar": len(mel) / bars,
            "bars_per_tune": float(len(s.bars)), "mean_note_length": float(np.mean([n.duration for n in mel]))}


def length_histogram(s: Scan) -> np.ndarray:
    """Counts of the melody's note lengths in LENGTH_BINS (nearest bin)."""
    out = np.zeros(len(LENGTH_BINS))
    bins = np.asarray(LENGTH_BINS)
    for n in s.melody():
        out[int(np.argmin(np.abs(bins - n.duration)))] += 1
    return out


def feature_vector(s: Scan, text: str) -> np.ndarray:
    """The feature view of one tune for the discriminator (fixed length)."""
    mel = s.melody()
    tonic = s.key.tonic if s.key is not None else 0
    pcs = np.bincount([(n.pitch - tonic) % 12 for n in mel], minlength=12).astype(float)
    ints = np.bincount([max(-12, min(12, b.pitch - a.pitch)) + 12 for a, b in zip(mel, mel[1:])],
                       minlength=25).astype(float)
    lengths = length_histogram(s)
    total = max(1, len(mel))
    scalars = scalar_features(s) or dict.fromkeys(FEATURES, 0.0)
    from rlmusic.structure import strains

    extra = [s.repeats["start"], s.repeats["end"], s.repeats["endings"], len(strains(s, text)), len(mel)]
    onehots = [float(_mode(s) == m) for m in MODES] + [float(_meter(s) == m) for m in METERS]
    return np.concatenate([pcs / total, ints / max(1, total - 1), lengths / total,
                           [scalars[f] for f in FEATURES], extra, onehots])


# --- discriminators ------------------------------------------------------------------------------------------
def classifiers(text_c: float = 10.0) -> tuple:
    """The two views' unfitted scikit-learn pipelines (text: documents of `normalise`; features: rows of
    `feature_matrix`), logistic regressions; the text view's inverse regularisation is `text_c`, the features keep
    scikit-learn's C=1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    text = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 5), min_df=2, sublinear_tf=True),
                         LogisticRegression(C=text_c, max_iter=3000))
    return text, make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))


def feature_matrix(tunes: list[str], scans: list[Scan] | None = None) -> np.ndarray:
    """One `feature_vector` row per tune (their scans, when the caller holds them already)."""
    scans = scans or [scan(t) for t in tunes]
    return np.stack([feature_vector(s, t) for s, t in zip(scans, tunes)])


def discriminator(tunes: list[str], reference: list[str], folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Cross-validated accuracy of the two views (see the module docstring): mean and std over the folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    n = min(len(tunes), len(reference))
    if n < folds:
        return {}
    a = [tunes[i] for i in rng.permutation(len(tunes))[:n]]
    b = [reference[i] for i in rng.permutation(len(reference))[:n]]
    y = np.array([1] * n + [0] * n)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # C=10 for the text (weak regularisation): on 200 + 200 tunes it tells a 1x512 model from real tunes at 0.67
    # (C=1: 0.62) and real from real still at chance (0.48); the features keep scikit-learn's C=1
    text, features = classifiers(10.0)
    text_scores = cross_val_score(text, [normalise(t) for t in a + b], y, cv=cv)
    feature_scores = cross_val_score(features, feature_matrix(a + b), y, cv=cv)
    return {"discriminator_text": float(text_scores.mean()), "discriminator_text_std": float(text_scores.std()),
            "discriminator_features": float(feature_scores.mean()),
            "discriminator_features_std": float(feature_scores.std())}


# --- feature distributions -----------------------------------------------------------------------------------
def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde

    if len(values) < 2 or np.ptp(values) == 0:  # a point mass: a narrow bump where the values are
        width = max(1e-3, 0.05 * (grid[-1] - grid[0]))
        centre = values.mean() if len(values) else 0.0
        dens = np.exp(-0.5 * ((grid - centre) / width) ** 2)
    else:
        dens = gaussian_kde(values)(grid)
    return dens / np.trapz(dens, grid)


def overlap_and_kl(values: np.ndarray, reference: np.ndarray, points: int = 512) -> tuple[float, float]:
    """Overlap area and KL(values || reference) of the two KDE-smoothed distributions, on a common grid."""
    lo, hi = min(values.min(), reference.min()), max(values.max(), reference.max())
    pad = 0.25 * (hi - lo) or 1.0
    grid = np.linspace(lo - pad, hi + pad, points)
    p, q = _kde(values, grid), _kde(reference, grid)
    overlap = float(np.trapz(np.minimum(p, q), grid))
    floor = 1e-12
    kl = float(np.trapz(p * np.log((p + floor) / (q + floor)), grid))
    return min(1.0, overlap), max(0.0, kl)


def _histogram_overlap_kl(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    p, q = (a + 1) / (a + 1).sum(), (b + 1) / (b + 1).sum()
    return float(np.minimum(p, q).sum()), float((p * np.log(p / q)).sum())


def tv_distance(a: list[str], b: list[str]) -> float:
    ca, cb = Counter(a), Counter(b)
    return 0.5 * sum(abs(ca[k] / len(a) - cb[k] / len(b)) for k in set(ca) | set(cb))


def distributions(scans: list[Scan], reference: list[Scan]) -> dict[str, float]:
    """Per-feature overlap and KL against the reference, their means, and the key/meter TV distances."""
    mine = [f for f in (scalar_features(s) for s in scans) if f]
    theirs = [f for f in (scalar_features(s) for s in reference) if f]
    if len(mine) < 2 or len(theirs) < 2:
        return {}
    out: dict[str, float] = {}
    for name in FEATURES:
        out[f"overlap/{name}"], out[f"kl/{name}"] = overlap_and_kl(
            np.array([f[name] for f in mine]), np.array([f[name] for f in theirs]))
    out["overlap/note_lengths"], out["kl/note_lengths"] = _histogram_overlap_kl(
        sum(length_histogram(s) for s in scans), sum(length_histogram(s) for s in reference))
    overlaps = [v for k, v in out.items() if k.startswith("overlap/")]
    kls = [v for k, v in out.items() if k.startswith("kl/")]
    out["feature_overlap"] = float(np.mean(overlaps))
    out["feature_kl"] = float(np.mean(kls))
    out["key_mode_tv"] = tv_distance([_mode(s) for s in scans], [_mode(s) for s in reference])
    out["meter_tv"] = tv_distance([_meter(s) for s in scans], [_meter(s) for s in reference])
    return out


# --- copying and diversity -----------------------------------------------------------------------------------
def bar_sequence(s: Scan) -> list[tuple]:
    """The tune's bars as (pitch, duration) tuples of their notes (bars without notes left out)."""
    bars: dict[int, list] = {}
    for n in s.melody():
        bars.setdefault(n.bar, []).append((n.pitch, round(n.duration, 6)))
    return [tuple(bars[k]) for k in sorted(bars)]


class CopyIndex:
    """Every run of `bars` consecutive bars of the training tunes, and their whole note sequences."""

    def __init__(self, training: list[Scan], bars: int = 4):
        self.bars = bars
        self.windows: set[int] = set()
        self.tunes: set[int] = set()
        self.add(training)

    def add(self, training: list[Scan]) -> "CopyIndex":
        for s in training:
            seq = bar_sequence(s)
            self.tunes.add(hash(tuple(seq)))
            for i in range(len(seq) - self.bars + 1):
                self.windows.add(hash(tuple(seq[i:i + self.bars])))
        return self

    def extended(self, training: list[Scan]) -> "CopyIndex":
        """A new index holding this one's tunes and `training` (this one is left as it is)."""
        other = CopyIndex([], self.bars)
        other.windows, other.tunes = set(self.windows), set(self.tunes)
        return other.add(training)

    def copies(self, s: Scan) -> tuple[bool, bool]:
        """(shares `bars` consecutive bars with a training tune, equals a training tune)."""
        seq = bar_sequence(s)
        shared = any(hash(tuple(seq[i:i + self.bars])) in self.windows for i in range(len(seq) - self.bars + 1))
        return shared, bool(seq) and hash(tuple(seq)) in self.tunes


def form(tunes: list[str], scans: list[Scan]) -> dict[str, float]:
    """Form of a set of tunes: repeat signs, AABB, bars true to the meter, and how varied the outlines are."""
    from rlmusic.structure import bar_line_pattern, has_repeat_signs, is_aabb, meter_consistent

    if not tunes:
        return {}
    consistent = [c for c in (meter_consistent(s, t) for t, s in zip(tunes, scans)) if c is not None]
    patterns = Counter(bar_line_pattern(t) for t in tunes)
    return {"repeat_sign_tunes": sum(map(has_repeat_signs, tunes)) / len(tunes),
            "aabb_tunes": sum(is_aabb(t, s) for t, s in zip(tunes, scans)) / len(tunes),
            "meter_consistent_tunes": sum(consistent) / len(consistent) if consistent else 0.0,
            "bar_patterns_per_1000": 1000 * len(patterns) / len(tunes),
            "top15_bar_pattern_share": sum(n for _, n in patterns.most_common(15)) / len(tunes)}


def copying(scans: list[Scan], index: CopyIndex) -> dict[str, float]:
    if not scans:
        return {}
    flags = [index.copies(s) for s in scans]
    seqs = [bar_sequence(s) for s in scans]
    all_bars = [b for seq in seqs for b in seq]
    seen, duplicates = set(), 0
    for seq in seqs:
        key = tuple(seq)
        duplicates += key in seen
        seen.add(key)
    return {f"copies_{index.bars}_bars": sum(f[0] for f in flags) / len(scans),
            "exact_copies": sum(f[1] for f in flags) / len(scans),
            "distinct_bars": len(set(all_bars)) / len(all_bars) if all_bars else 0.0,
            "duplicate_tunes": duplicates / len(scans)}
