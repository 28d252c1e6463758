"""Reward plugins (installed as `rlmusic.rewards`).

    from rlmusic.rewards import available, get, score, scan_all
    score("in_key", ["X:1\\nT:t\\nM:4/4\\nL:1/8\\nK:G\\nGABc d2B2|"])   # -> [1.0]

Built-in families: `syntax` (ABC headers, clean scan, bar durations, balance, abc2midi) and `theory` (the
Magenta RL Tuner rules re-expressed for ABC). See `registry` for how names resolve and docs/rewards.md for how to
write and ship a reward of your own.
"""

from rlmusic.rewards.registry import ENTRY_POINT_GROUP, RewardInfo, available, get, register, score


def scan_all(tunes: list[str]):
    """One scan per tune, to pass to every reward as `scans=` (each reward would otherwise scan again)."""
    from rlmusic.abc import scan

    return [scan(t) for t in tunes]


__all__ = ["ENTRY_POINT_GROUP", "RewardInfo", "available", "get", "register", "score", "scan_all"]
