"""Fine-tuning throughput: tunes/s of an iteration (collect -> shape -> update), today's loop vs the reference.

The reference is the loop as it was before length buckets (reproduced here): 16 tunes per iteration, the KL
shaping passes compiled per input shape (they retraced every iteration), and tf-agents' PPO `train` on the whole
batch padded to its longest tune. Each variant then runs `rlmusic.rollouts.Rollouts` + `rlmusic.learner.Learner`
(what `finetune` runs) with a number of tunes per iteration and of length buckets. Every variant starts from a
fresh load of the same pretrained run, compiles during two untimed iterations, and is timed over the next
`--iterations`. The supervised ptx term is off in all (it costs the same in each). Prints a table of seconds per
part and tunes/s, with the ratio to the reference.

    python benchmarks/finetune_profile.py [--checkpoint pretrained] [--iterations 3]
        [--variants 16x1 32x1 32x2 32x4 64x4]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from _common import hardware, hardware_line, parser  # noqa: E402,F401 (the repository on sys.path)

from rlmusic._tf import tf  # noqa: E402
from rlmusic.devices import cpu_name  # noqa: E402
from rlmusic.envs.composition import AbcCompositionEnv  # noqa: E402
from rlmusic.finetune import FinetuneConfig  # noqa: E402
from rlmusic.learner import Learner, make_agent  # noqa: E402
from rlmusic.policy import kl_shaped_rewards, sequence_log_probs  # noqa: E402
from rlmusic.rewards.mix import RewardMix  # noqa: E402
from rlmusic.rollouts import Rollouts  # noqa: E402
from rlmusic.rundir import load_model, shipped_model  # noqa: E402
from tf_agents.agents.ppo import ppo_clip_agent  # noqa: E402
from tf_agents.networks import value_rnn_network  # noqa: E402
from tf_agents.utils import common  # noqa: E402

ENV_TIME = [0.0]


def time_env_steps() -> None:
    """Count the time spent inside the environments' `step` (rewards included)."""
    real_step = AbcCompositionEnv.step

    def timed_step(self, action):
        t = time.perf_counter()
        try:
            return real_step(self, action)
        finally:
            ENV_TIME[0] += time.perf_counter() - t

    AbcCompositionEnv.step = timed_step


def reference_agent(cfg, env, actor):
    """The PPO agent as `finetune` built it before buckets: advantages computed inside `train`."""
    value_net = value_rnn_network.ValueRnnNetwork(
        env.observation_spec(), preprocessing_layers=tf.keras.layers.Embedding(actor.model.vocab_size, 32),
        input_fc_layer_params=None, lstm_size=(cfg.value_units,), output_fc_layer_params=None)
    agent = ppo_clip_agent.PPOClipAgent(
        env.time_step_spec(), env.action_spec(), optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
        actor_net=actor, value_net=value_net, num_epochs=cfg.num_epochs, importance_ratio_clipping=cfg.clip,
        entropy_regularization=cfg.entropy, discount_factor=cfg.discount, lambda_value=cfg.gae_lambda,
        use_gae=True, normalize_observations=False, normalize_rewards=False,
        train_step_counter=tf.Variable(0, dtype=tf.int64))
    agent.initialize()
    return agent


def run_variant(checkpoint, tunes: int, buckets: int | None, iterations: int) -> dict:
    """Seconds per part and tunes per iteration; `buckets=None` is the reference loop."""
    cfg = FinetuneConfig(tunes_per_iteration=tunes, update_buckets=buckets or 1, ptx_coef=0.0, seed=0)
    tf.keras.utils.set_random_seed(0)
    model, vocab, _ = load_model(checkpoint)
    prior, _, _ = load_model(checkpoint)
    rollouts = Rollouts(cfg, vocab, model, RewardMix(cfg.rewards, gates=cfg.gate))
    if buckets is None:
        agent = reference_agent(cfg, rollouts.env, rollouts.actor)
        train = common.function(agent.train)
        pid = rollouts.primer_ids
        logp = tf.function(lambda m, o, a, s: sequence_log_probs(m, o, a, s, pid)[0])  # as it was: per shape

        def learn(exp, finished):
            a = logp(model, exp.observation, exp.action, exp.step_type)
            b = logp(prior, exp.observation, exp.action, exp.step_type)
            live = 1.0 - tf.cast(exp.is_boundary(), tf.float32)
            shaped = kl_shaped_rewards(exp.reward, a, b, 0.1) * live
            t = time.perf_counter()
            train(exp._replace(reward=shaped))
            return time.perf_counter() - t
    else:
        agent, value_net, optimizer = make_agent(cfg, rollouts.env, rollouts.actor)
        learner = Learner(cfg, agent, optimizer, (rollouts.actor, value_net), model, prior, rollouts.primer_ids)

        def learn(exp, finished):
            parts = [learner.shape(p, infos, 0.1)[0] for p, infos in learner.split(exp, finished)]
            t = time.perf_counter()
            float(learner.ppo_update(parts))
            return time.perf_counter() - t
    rollouts.attach(agent)
    rows = []
    for it in range(iterations + 2):  # the first two compile (the second generalises the shapes): not counted
        ENV_TIME[0] = 0.0
        t0 = time.perf_counter()
        exp, finished = rollouts.collect()
        t1 = time.perf_counter()
        update = learn(exp, finished)
        t2 = time.perf_counter()
        if it >= 2:
            rows.append(dict(env=ENV_TIME[0], collect=t1 - t0, shape=t2 - t1 - update, update=update,
                             tunes=len(finished), chars=np.mean([len(i["tune"]) for i in finished])))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=["16x1", "32x1", "32x2", "32x4", "64x4"],
                    help="TUNESxBUCKETS")
    args = ap.parse_args()
    checkpoint = shipped_model() if args.checkpoint == "pretrained" else Path(args.checkpoint)
    time_env_steps()
    results = [("reference (16 tunes, before buckets)", run_variant(checkpoint, 16, None, args.iterations))]
    for v in args.variants:
        tunes, buckets = (int(x) for x in v.split("x"))
        results.append((f"{tunes} tunes, {buckets} bucket{'s' * (buckets > 1)}",
                        run_variant(checkpoint, tunes, buckets, args.iterations)))
        print(f"done: {v}", file=sys.stderr, flush=True)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, "
          f"{args.iterations} timed iterations per variant\n")
    print("| variant | chars/tune | env + rewards s | collect s | shaping s | update s | tunes/s | x reference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for name, r in results:
        total = r["collect"] + r["shape"] + r["update"]
        rate = r["tunes"] / total
        base = base or rate
        print(f"| {name} | {r['chars']:.0f} | {r['env']:.2f} | {r['collect'] - r['env']:.2f} | {r['shape']:.2f} | "
              f"{r['update']:.2f} | {rate:.2f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
