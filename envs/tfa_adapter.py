"""Gymnasium -> tf-agents: a `PyEnvironment` around any Gymnasium env with Discrete actions and observations.

tf-agents 0.19 (its last release) has no Gymnasium wrapper, and its gym wrapper targets the old 4-tuple API.
The mapping is small but exact: `terminated` -> `ts.termination` (discount 0: no value after the end of the
tune), `truncated` -> `ts.truncation` (discount kept: the tune was cut by the time limit, not finished), else
`ts.transition`. After an episode ends the next `step` starts a new one, as tf-agents drivers expect.
The `info` of each episode's last step is kept in `finished` (the caller drains it): a training loop reads the
tunes and scores the environment produced instead of decoding and scoring them again. With `one_episode`, an
environment whose episode has ended idles (the Gymnasium env is not stepped, nothing is scored: observation 0,
reward 0) until `finished` is drained, for loops that collect one episode per environment and pad the rest.
An environment that offers action masks (`info["action_mask"]`, as AbcCompositionEnv with constrain="syntax")
gives the observation {"char": id, "mask": allowed characters}: what tf-agents policies split with an
`observation_and_action_constraint_splitter`, and what rlmusic's policy network masks its logits with, so the
trajectories keep the masks their actions were drawn under.
"""

from __future__ import annotations

import numpy as np

from rlmusic._tf import quiet_import

quiet_import("tf_agents")  # tf-agents imports the old gym, which prints a notice
from tf_agents.environments import batched_py_environment, py_environment  # noqa: E402
from tf_agents.specs import array_spec  # noqa: E402
from tf_agents.trajectories import time_step as ts  # noqa: E402


class GymnasiumPyEnvironment(py_environment.PyEnvironment):
    def __init__(self, env, discount: float = 1.0, one_episode: bool = False):
        super().__init__(handle_auto_reset=True)
        self.env = env
        self.discount = np.float32(discount)
        self.one_episode = one_episode
        n_obs, n_act = int(env.observation_space.n), int(env.action_space.n)
        self.masked = getattr(env, "constrain", "none") != "none"
        char_spec = array_spec.BoundedArraySpec((), np.int32, 0, n_obs - 1, name="observation")
        self._observation_spec = char_spec if not self.masked else {
            "char": char_spec, "mask": array_spec.ArraySpec((n_act,), np.bool_, name="mask")}
        self._all_allowed = np.ones(n_act, np.bool_)
        self._action_spec = array_spec.BoundedArraySpec((), np.int32, 0, n_act - 1, name="action")
        self.finished: list[dict] = []

    def observation_spec(self):
        return self._observation_spec

    def action_spec(self):
        return self._action_spec

    def _observation(self, obs, info: dict):
        if not self.masked:
            return np.int32(obs)
        mask = info.get("action_mask")
        if mask is None:
            mask = self._all_allowed
        elif mask.dtype != np.bool_:
            mask = mask.view(np.bool_) if mask.dtype.itemsize == 1 else mask.astype(np.bool_)
        return {"char": np.int32(obs), "mask": mask}

    def _reset(self):
        obs, info = self.env.reset()
        return ts.restart(self._observation(obs, info))

    def _step(self, action):
        if self.one_episode and self.finished:
            return ts.transition(self._observation(0, {}), np.float32(0.0), self.discount)
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        if terminated or truncated:
            self.finished.append(info)
        obs, reward = self._observation(obs, info), np.float32(reward)
        if terminated:
            return ts.termination(obs, reward)
        if truncated:
            return ts.truncation(obs, reward, self.discount)
        return ts.transition(obs, reward, self.discount)


def batched(make_env, n: int, one_episode: bool = False) -> batched_py_environment.BatchedPyEnvironment:
    """`n` copies of `make_env()` stepped together (batch dimension first), for tf-agents drivers."""
    envs = [GymnasiumPyEnvironment(make_env(), one_episode=one_episode) for _ in range(n)]
    return batched_py_environment.BatchedPyEnvironment(envs, multithreading=False)


def drain_finished(env: batched_py_environment.BatchedPyEnvironment) -> list[dict]:
    """The `info` of every episode ended since the last call, across the batch, and forget them."""
    out = []
    for e in env.envs:
        out.extend(e.finished)
        e.finished.clear()
    return out
