"""Gymnasium environments (installed as `rlmusic.envs`). Importing this module registers them:

    import gymnasium as gym
    import rlmusic.envs  # noqa: F401
    env = gym.make("rlmusic/AbcComposition-v1", rewards={"in_key": 1.0, "valid": 1.0}, max_length=600)
    obs, info = env.reset()   # info["action_mask"]: the characters the ABC grammar allows next

v1 offers action masks (constrain="syntax"); v0 is the environment before them (see the Version History in
AbcCompositionEnv's docstring).
"""

from gymnasium.envs.registration import register, registry

from rlmusic.envs.composition import DEFAULT_REWARDS, AbcCompositionEnv, default_vocab

ENV_ID = "rlmusic/AbcComposition-v1"
ENV_ID_V0 = "rlmusic/AbcComposition-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="rlmusic.envs.composition:AbcCompositionEnv", kwargs={"constrain": "syntax"})
if ENV_ID_V0 not in registry:
    register(id=ENV_ID_V0, entry_point="rlmusic.envs.composition:AbcCompositionEnv", kwargs={"constrain": "none"})

__all__ = ["ENV_ID", "ENV_ID_V0", "AbcCompositionEnv", "DEFAULT_REWARDS", "default_vocab"]
