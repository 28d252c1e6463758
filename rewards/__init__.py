"""Reward plugins (rlmusic.rewards)."""
