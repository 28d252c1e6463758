"""Train rlmusic's environment with another RL library: sb3-contrib's MaskablePPO on the ABC grammar's masks.

`rlmusic/AbcComposition-v1` offers the characters that can continue a valid tune as `action_masks()`, the
convention MaskablePPO reads, so a policy that knows nothing of ABC writes valid tunes from its first step and
learns only the music. The policy here is sb3's MlpPolicy on the last character (a bigram model, no memory of the
tune): it is the smallest learner that shows the interface, not a rival to `rlmusic finetune`'s LSTM.

    python3 -m venv .venv-sb3
    .venv-sb3/bin/pip install -r examples/maskable_ppo/requirements.txt && .venv-sb3/bin/pip install --no-deps -e .
    .venv-sb3/bin/python examples/maskable_ppo/train.py --steps 50000 --json benchmarks/results/maskable_ppo.json

It scores a set of tunes before training and after (the same rewards, a fresh seed), and checks every tune with
abc2midi where it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

PRIMER = "X:1\nT:\nM:4/4\nL:1/8\nK:D\n"  # the policy writes the body of a reel in D
REWARDS = {"in_key": 1.0, "cadences": 1.0, "enough_bars": 1.0}
GATE = "enough_bars"  # at least one 8-bar strain, or nothing: no shrinking to a two-note tune that ends on D


def make_env(max_length: int):
    import rlmusic.envs  # noqa: F401 - registers rlmusic/AbcComposition-v0 and -v1

    return gym.make("rlmusic/AbcComposition-v1", rewards=REWARDS, gate=GATE, primer=PRIMER, max_length=max_length)


def play(model, env, episodes: int, seed: int) -> tuple[list[str], list[float]]:
    """Tunes written by `model` (a MaskablePPO) under the masks, and their episode rewards."""
    from sb3_contrib.common.maskable.utils import get_action_masks

    tunes, rewards = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, action_masks=get_action_masks(env), deterministic=False)
            obs, reward, terminated, truncated, info = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        tunes.append(info["tune"])
        rewards.append(total)
    return tunes, rewards


def summary(tunes: list[str], rewards: list[float]) -> dict:
    from rlmusic import validity

    problems = validity.check_tunes(tunes)
    return {"mean_reward": float(np.mean(rewards)), "valid": sum(not p for p in problems) / len(tunes),
            "check": validity.checker(), "mean_chars": float(np.mean([len(t) for t in tunes]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50_000, help="environment steps (characters) to train on")
    ap.add_argument("--episodes", type=int, default=50, help="tunes scored before and after training")
    ap.add_argument("--max-length", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    from sb3_contrib import MaskablePPO

    env = make_env(args.max_length)
    model = MaskablePPO("MlpPolicy", env, n_steps=1024, batch_size=256, learning_rate=1e-3, gamma=1.0,
                        ent_coef=0.01, seed=args.seed, verbose=0)
    before = summary(*play(model, env, args.episodes, seed=10_000))
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, progress_bar=False)
    seconds = time.perf_counter() - start
    tunes, rewards = play(model, env, args.episodes, seed=20_000)
    after = summary(tunes, rewards)
    result = {"steps": args.steps, "train_s": round(seconds, 1), "rewards": REWARDS, "gate": GATE,
              "before": before, "after": after, "example": tunes[0], "cores": os.cpu_count()}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
