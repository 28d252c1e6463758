"""Gymnasium environments (installed as `rlmusic.envs`). Importing this module registers them:

    import gymnasium as gym
    import rlmusic.envs  # noqa: F401
    env = gym.make("rlmusic/AbcComposition-v0", rewards={"in_key": 1.0, "valid": 1.0}, max_length=600)
"""

from gymnasium.envs.registration import register, registry

from rlmusic.envs.composition import DEFAULT_REWARDS, AbcCompositionEnv, default_vocab

ENV_ID = "rlmusic/AbcComposition-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="rlmusic.envs.composition:AbcCompositionEnv")

__all__ = ["ENV_ID", "AbcCompositionEnv", "DEFAULT_REWARDS", "default_vocab"]
