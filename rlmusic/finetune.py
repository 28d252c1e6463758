"""`python -m rlmusic finetune`: reinforcement learning on reward plugins, KL-controlled to the pretrained model.

Each iteration reads as: collect tunes with the policy (a compiled tf-agents driver over the Gymnasium env) ->
shape the rewards (task reward minus beta times log pi/p_prior, the prior scored in one batched pass) ->
update (tf-agents PPO or REINFORCE) -> log and checkpoint. The policy is the pretrained model itself (its layers,
shared, not copied); the prior is a second, frozen load of the same checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlmusic import config as config_lib
from rlmusic._tf import quiet_import, tf
from rlmusic.corpus import DEFAULT_PRIMER
from rlmusic.envs.composition import DEFAULT_REWARDS, AbcCompositionEnv
from rlmusic.envs.tfa_adapter import batched
from rlmusic.errors import UserError
from rlmusic.model import ModelConfig
from rlmusic.policy import CharPolicyNetwork, kl_shaped_rewards, sequence_log_probs
from rlmusic.rundir import RunDir, load_model

quiet_import("tf_agents")
from tf_agents.agents.ppo import ppo_clip_agent  # noqa: E402
from tf_agents.agents.reinforce import reinforce_agent  # noqa: E402
from tf_agents.drivers import dynamic_episode_driver  # noqa: E402
from tf_agents.environments import tf_py_environment  # noqa: E402
from tf_agents.networks import value_rnn_network  # noqa: E402
from tf_agents.replay_buffers import tf_uniform_replay_buffer  # noqa: E402
from tf_agents.utils import common  # noqa: E402


@dataclass
class FinetuneConfig:
    rewards: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARDS))
    """Reward name (built-in, entry point or module:function) -> weight."""
    gate: str = "valid,enough_bars"
    """Rewards (comma-separated) whose scores scale all the others (empty: plain weighted sum); see
    AbcCompositionEnv. Without enough_bars the policy learns to write 2-bar fragments (measured: README)."""
    beta: float = 0.1
    """Weight of the KL penalty to the pretrained model, per character."""
    discount: float = 1.0
    """Discount of future rewards. 1.0: a tune is one episode scored at its end; below 1 (PPOAgent's own default
    is 0.99) the end-of-tune reward fades over hundreds of characters and short tunes win."""
    agent: str = "ppo"
    """"ppo" (tf-agents PPOClipAgent) or "reinforce" (ReinforceAgent with a value baseline)."""
    iterations: int = 100
    """Collect-and-update iterations in total (a re-run with a higher value continues)."""
    tunes_per_iteration: int = 16
    """Tunes collected per iteration (one environment each, stepped as a batch)."""
    max_length: int = 600
    """Characters per tune (after the primer) before the episode is truncated."""
    primer: str = DEFAULT_PRIMER
    """Every tune starts with this text (a header asks for a key or meter); must end with a newline."""
    learning_rate: float = 1e-4
    """Adam learning rate of the policy and value networks."""
    num_epochs: int = 4
    """PPO: passes over each batch of tunes."""
    clip: float = 0.2
    """PPO: importance-ratio clipping."""
    entropy: float = 0.0
    """Entropy bonus weight."""
    value_units: int = 128
    """LSTM units of the value network (it has its own embedding and LSTM)."""
    checkpoint_every: int = 10
    """Iterations between checkpoints (the last is always saved)."""
    seed: int = 0
    """Seed of weights of the value network and of the policy's sampling."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Filled from the pretrained run (saved so `sample` and `evaluate` can load this run)."""
    pretrained: str = ""
    """The pretrained run directory (filled from --checkpoint)."""
    wandb_project: str = "rlmusic"
    """Weights & Biases project used with --wandb."""


def decode_tunes(exp, vocab, primer: str = "") -> list[str]:
    """The tunes completed in a batch of trajectories [B, T]: the primer, then the actions up to each episode's
    last step."""
    actions = exp.action.numpy()
    boundary = exp.is_boundary().numpy()
    last = exp.next_step_type.numpy() == 2
    tunes = []
    for row in range(actions.shape[0]):
        chars: list[str] = []
        for t in range(actions.shape[1]):
            if boundary[row, t]:
                continue
            chars.append(vocab.chars[actions[row, t]])
            if last[row, t]:
                tunes.append((primer + "".join(chars)).rstrip("\n"))
                chars = []
    return tunes


def make_agent(cfg: FinetuneConfig, env, actor):
    value_net = value_rnn_network.ValueRnnNetwork(
        env.observation_spec(), preprocessing_layers=tf.keras.layers.Embedding(actor.model.vocab_size, 32),
        input_fc_layer_params=None, lstm_size=(cfg.value_units,), output_fc_layer_params=None)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    counter = tf.Variable(0, dtype=tf.int64)
    if cfg.agent == "ppo":
        agent = ppo_clip_agent.PPOClipAgent(
            env.time_step_spec(), env.action_spec(), optimizer=optimizer, actor_net=actor, value_net=value_net,
            num_epochs=cfg.num_epochs, importance_ratio_clipping=cfg.clip, entropy_regularization=cfg.entropy,
            discount_factor=cfg.discount,
            use_gae=True, normalize_observations=False,  # token ids are not to be normalised
            normalize_rewards=False, train_step_counter=counter)
    elif cfg.agent == "reinforce":
        agent = reinforce_agent.ReinforceAgent(
            env.time_step_spec(), env.action_spec(), actor_network=actor, optimizer=optimizer,
            value_network=value_net, normalize_returns=True, entropy_regularization=cfg.entropy, gamma=cfg.discount,
            train_step_counter=counter)
    else:
        raise UserError(f"config key agent: expected ppo or reinforce, got {cfg.agent!r}")
    agent.initialize()
    return agent, value_net, optimizer


def run_finetune(cfg: FinetuneConfig, checkpoint: str | Path, out: str | Path, use_wandb: bool = False,
                 log=print) -> Path:
    from rlmusic.runlog import RunLogger, progress
    from rlmusic.rewards import get

    for name in cfg.rewards:
        get(name)  # an unknown name fails before any work
    policy_model, vocab, pre_cfg = load_model(checkpoint)
    prior_model, _, _ = load_model(checkpoint)  # frozen: never given to an optimizer
    cfg.model = config_lib.from_dict(ModelConfig, pre_cfg.get("model") or {}, prefix="model.")
    cfg.pretrained = str(checkpoint)
    log("config:\n" + config_lib.dump_yaml(cfg).rstrip())  # resolved: the model and pretrained run filled in
    run = RunDir(out)
    if run.exists():
        saved = run.read_vocab()
        if saved != vocab:
            raise UserError(f"--out {run.path} holds a run with another vocabulary ({saved.diff(vocab)}); "
                            f"use another --out, or delete {run.path} to start fresh")
    tf.keras.utils.set_random_seed(cfg.seed)
    py_env = batched(lambda: AbcCompositionEnv(vocab=vocab, rewards=cfg.rewards, max_length=cfg.max_length,
                                               primer=cfg.primer, gate=cfg.gate or None), cfg.tunes_per_iteration)
    env = tf_py_environment.TFPyEnvironment(py_env)
    scorer = py_env.envs[0].env
    primer_ids = vocab.encode(cfg.primer[:-1], what="primer")  # the last char is the first observation
    actor = CharPolicyNetwork(policy_model, primer_ids)
    agent, value_net, optimizer = make_agent(cfg, env, actor)
    iteration = tf.Variable(0, dtype=tf.int64)
    objects = dict(model=policy_model, value_net=value_net, optimizer=optimizer, iteration=iteration)
    if run.latest_step() is not None:
        run.restore_checkpoint(partial=True, **objects)
        log(f"resuming from iteration {int(iteration.numpy())} in {run.path}")
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config_lib.dump_yaml(cfg))
    run.write_vocab(vocab)

    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=env.batch_size, max_length=2 * cfg.max_length + 4)
    driver = dynamic_episode_driver.DynamicEpisodeDriver(
        env, agent.collect_policy, observers=[buffer.add_batch], num_episodes=cfg.tunes_per_iteration)
    collect = common.function(driver.run)
    train = common.function(agent.train)
    # log pi and log p_prior of the collected characters, each in one batched pass (the policy's weights are
    # still those that collected them, so this is the behaviour policy's log-probability).
    policy_logp = tf.function(lambda obs, act, st: sequence_log_probs(policy_model, obs, act, st, primer_ids))
    prior_logp = tf.function(lambda obs, act, st: sequence_log_probs(prior_model, obs, act, st, primer_ids))
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="finetune")
    try:
        bar = progress(total=cfg.iterations, initial=int(iteration.numpy()), desc="finetune", unit="it")
        while int(iteration.numpy()) < cfg.iterations:
            start = time.perf_counter()
            # rollout
            try:
                collect()
            except tf.errors.OpError:
                # A reward plugin that failed inside the env: report it by name, not as a graph error.
                failed = [e.env.failure for e in py_env.envs if e.env.failure is not None]
                if failed:
                    raise failed[0] from None
                raise
            exp = buffer.gather_all()
            buffer.clear()
            tunes = decode_tunes(exp, vocab, cfg.primer)
            # advantages come from the agent; the rewards it sees are shaped here
            logp_pi, logits = policy_logp(exp.observation, exp.action, exp.step_type)
            logp_prior, _ = prior_logp(exp.observation, exp.action, exp.step_type)
            live = 1.0 - tf.cast(exp.is_boundary(), tf.float32)
            shaped = kl_shaped_rewards(exp.reward, logp_pi, logp_prior, cfg.beta) * live
            # update
            loss = float(train(exp._replace(reward=shaped)).loss)
            iteration.assign_add(1)
            # log
            it = int(iteration.numpy())
            scores = scorer.score(tunes) if tunes else []
            row = {"step": it, "loss": loss, "tunes": len(tunes),
                   "tunes_per_sec": len(tunes) / (time.perf_counter() - start),
                   "kl": float(tf.reduce_sum((logp_pi - logp_prior) * live) / tf.reduce_sum(live)),
                   "entropy": float(tf.reduce_sum(_entropy(logits) * live) / tf.reduce_sum(live)),
                   "reward": float(np.mean([scorer.total(s) for s in scores])) if scores else 0.0}
            for name in scorer.rewards:
                values = [s[name] for s in scores if s[name] is not None]
                row[f"rewards/{name}"] = float(np.mean(values)) if values else None
            if "valid" in scorer.rewards:  # weighted, or scored as the gate
                row["valid_rate"] = row["rewards/valid"]
            if not math.isfinite(loss):
                raise UserError(f"loss became {loss} at iteration {it}; lower learning_rate")
            logger.log(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}")
            if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                run.save_checkpoint(it, **objects)
        bar.close()
    except UserError:
        if int(iteration.numpy()) > (run.latest_step() or 0):
            run.save_checkpoint(int(iteration.numpy()), **objects)  # keep what was learned before the failure
        raise
    finally:
        logger.close()
    return run.path


def _entropy(logits):
    logp = tf.nn.log_softmax(logits, -1)
    return -tf.reduce_sum(tf.exp(logp) * logp, -1)
