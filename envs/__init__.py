"""Gymnasium environments (rlmusic.envs)."""
