"""Where a fine-tuning iteration's time goes: environment stepping + rewards vs network work.

Runs a few iterations of `rlmusic.finetune` machinery on a run directory and times, per iteration:
- env + rewards: time spent inside the environments' `step` (rewards included) during collection, measured by
  wrapping `AbcCompositionEnv.step` with a timer;
- collect: the rest of the compiled tf-agents driver (policy steps, batching, py_function overhead);
- shaping: the batched log-prob passes of policy and prior;
- update: `agent.train`.
It prints each as a share of the iteration and tunes/s.

    python benchmarks/finetune_profile.py --checkpoint runs/default [--config configs/finetune/default.yaml]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlmusic import config as config_lib  # noqa: E402
from rlmusic.envs.composition import AbcCompositionEnv  # noqa: E402
from rlmusic.finetune import FinetuneConfig, Rollouts, make_agent  # noqa: E402
from rlmusic.policy import sequence_log_probs  # noqa: E402
from rlmusic.rundir import load_model  # noqa: E402
from rlmusic._tf import tf  # noqa: E402
from tf_agents.utils import common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs/finetune/default.yaml"))
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    cfg = config_lib.load(FinetuneConfig, args.config)
    model, vocab, _ = load_model(args.checkpoint)
    prior, _, _ = load_model(args.checkpoint)
    rollouts = Rollouts(cfg, vocab, model)
    agent, _, _ = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    env_time = [0.0]
    real_step = AbcCompositionEnv.step

    def timed_step(self, action):
        t = time.perf_counter()
        try:
            return real_step(self, action)
        finally:
            env_time[0] += time.perf_counter() - t

    AbcCompositionEnv.step = timed_step
    train = common.function(agent.train)
    primer_ids = rollouts.primer_ids
    logp = tf.function(lambda m, o, a, s: sequence_log_probs(m, o, a, s, primer_ids)[0])
    rows = []
    for it in range(args.iterations + 1):  # the first iteration compiles; it is not counted
        env_time[0] = 0.0
        t0 = time.perf_counter()
        exp, finished = rollouts.collect()
        t1 = time.perf_counter()
        a, b = logp(model, exp.observation, exp.action, exp.step_type), logp(prior, exp.observation, exp.action,
                                                                             exp.step_type)
        float(tf.reduce_sum(a - b))
        t2 = time.perf_counter()
        train(exp)
        t3 = time.perf_counter()
        tunes = [info["tune"] for info in finished]
        if it:
            rows.append((t1 - t0, t2 - t1, t3 - t2, env_time[0], len(tunes), sum(len(t) for t in tunes)))
    collect_s, shape_s, update_s, env_s, n, chars = (np.mean([r[i] for r in rows]) for i in range(6))
    total = collect_s + shape_s + update_s
    print(f"per iteration ({n:.0f} tunes, {chars / n:.0f} chars each on average):")
    print("| part | seconds | share |\n|---|---:|---:|")
    print(f"| env stepping + rewards (inside collect) | {env_s:.2f} | {env_s / total:.1%} |")
    print(f"| collect, policy network part | {collect_s - env_s:.2f} | {(collect_s - env_s) / total:.1%} |")
    print(f"| KL shaping (policy + prior passes) | {shape_s:.2f} | {shape_s / total:.1%} |")
    print(f"| update (agent.train) | {update_s:.2f} | {update_s / total:.1%} |")
    print(f"tunes/s: {n / total:.2f}")


if __name__ == "__main__":
    main()
