"""`python -m rlmusic finetune`: reinforcement learning on reward plugins, KL-controlled to the pretrained model.

Each iteration reads as: collect tunes with the policy (rlmusic.rollouts: one whole tune per environment, in one
compiled loop) -> shape the rewards and update by length buckets (rlmusic.learner: task reward minus beta times
log pi/p_prior, the prior scored in one batched pass; tf-agents PPO or REINFORCE) -> log and checkpoint. The
policy is the pretrained model itself (its layers, shared, not copied); the prior is a second, frozen load of
the same checkpoint. On a GPU (device auto) the networks and the update run there; with strategy mirrored the
update is split over the replicas.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np

from rlmusic import config as config_lib
from rlmusic import interrupts, validity
from rlmusic._tf import tf
from rlmusic.control import adapt_beta, adapt_weight, guarded_kl_target, pi_weight  # noqa: F401
from rlmusic.data import DataConfig, prepare, windows_dataset
from rlmusic.errors import UserError
from rlmusic.finetune_config import MUSIC_REWARDS, FinetuneConfig  # noqa: F401 (the command's config)
from rlmusic.learner import PTX_LENGTH, Learner, Ptx, make_agent
from rlmusic.model import ModelConfig
from rlmusic.neutral import exempt_parts
from rlmusic.rewards.mix import RewardMix
from rlmusic.rollouts import Rollouts
from rlmusic.rundir import WRITE_ERRORS, RunDir, kept_on_interrupt, load_model, write_failure


def real_tunes_loader(cfg: FinetuneConfig, pre_cfg: dict, log=print):
    """A function returning the run's real tunes, read on the first call: `ptx_data`, else the pretrained run's
    own training tunes (by the same pipeline). The supervised loss (ptx_coef) trains on them, and the rewards
    receive it as `real_tunes` (the realness guards compare the policy's tunes with them)."""
    from rlmusic.corpus import load_corpus

    @functools.cache
    def load() -> list[str]:
        data = config_lib.from_dict(DataConfig, pre_cfg.get("data") or {}, prefix="data.")
        if cfg.ptx_data:
            tunes = load_corpus(cfg.ptx_data, max_chars=data.max_chars, midi_channel=data.midi_channel).tunes
        else:
            tunes = prepare(data, log=lambda m: None).train
        log(f"real tunes: {len(tunes)} (the supervised loss, the realness rewards)")
        return tunes

    return load


# What a resumed run must share with the run it continues: otherwise it is another experiment.
SAME_EXPERIMENT = ("pretrained", "model", "agent", "value_units")


def check_resumable(run: RunDir, cfg: FinetuneConfig, vocab) -> None:
    saved = run.read_config_dict()
    for key in SAME_EXPERIMENT:
        mine, theirs = config_lib.to_dict(cfg)[key], saved.get(key)
        if key == "pretrained":
            same = theirs is not None and Path(theirs).resolve() == Path(mine).resolve()
        else:
            same = theirs == mine
        if not same:
            raise UserError(f"--out {run.path} holds a run with {key}={theirs} (this one: {mine}); resuming it would "
                            f"change the experiment; use another --out, or delete {run.path} to start fresh")
    run.check_vocab(vocab)


def run_finetune(cfg: FinetuneConfig, checkpoint: str | Path, out: str | Path, use_wandb: bool = False,
                 log=print) -> Path:
    """Fine-tune the pretrained run `checkpoint` into `out` (resuming it); returns its path."""
    run = RunDir(out)
    try:
        run.lock("--out")  # before anything is read or written: a second run into the folder stops here
        return _run_finetune(cfg, checkpoint, run, use_wandb, log)
    except WRITE_ERRORS as exc:  # a full disk: named, and the last good checkpoint is kept
        raise write_failure(run, exc, "iteration", config_keys=OOM_KEYS) from exc
    finally:
        run.unlock()


OOM_KEYS = "tunes_per_iteration, max_length or ptx_batch"  # what to lower when memory runs out


def _run_finetune(cfg: FinetuneConfig, checkpoint: str | Path, run: RunDir, use_wandb: bool, log) -> Path:
    from rlmusic.runlog import RunLogger, plot_curves, progress

    if cfg.agent == "dpo":
        from rlmusic.dpo import run_dpo

        return run_dpo(cfg, checkpoint, run, use_wandb, log)

    mix = RewardMix(cfg.rewards, gates=cfg.gate, time_limit=cfg.rewards_time_limit)  # unknown names fail here
    if cfg.preference_model:  # the built-in `preference` scores with it: loaded (and so checked) before any work
        from rlmusic.rewards.preference import PREFERENCE

        PREFERENCE.use(cfg.preference_model)
    uses_abc2midi = [n for n in mix.names if n.startswith("abc2midi")]
    if uses_abc2midi and validity.abc2midi_path() is None:
        log(f"note: abc2midi is not installed (Debian package abcmidi): {', '.join(uses_abc2midi)} scores nothing "
            "and does not gate")
    from rlmusic import devices

    device = devices.resolve_device(cfg.device, "device")
    strategy = devices.resolve_strategy(cfg.strategy, device, "strategy")
    log(devices.describe(strategy, device, "float32"))
    Learner.check_split(cfg, strategy.num_replicas_in_sync)
    with strategy.scope():
        policy_model, vocab, pre_cfg = load_model(checkpoint, device)
        prior_model, _, _ = load_model(checkpoint, device)  # frozen: never given to an optimizer
    cfg.model = config_lib.from_dict(ModelConfig, pre_cfg.get("model") or {}, prefix="model.")
    cfg.pretrained = str(checkpoint)
    log("config:\n" + config_lib.dump_yaml(cfg).rstrip())  # resolved: the model and pretrained run filled in
    real_tunes = real_tunes_loader(cfg, pre_cfg, log)
    mix.context["real_tunes"] = real_tunes  # what the realness rewards call real
    run.clean_temporary()
    resuming = run.exists() and run.has_checkpoint()  # a folder without a checkpoint is replaced
    if resuming:
        check_resumable(run, cfg, vocab)
    tf.keras.utils.set_random_seed(cfg.seed)
    rollouts = Rollouts(cfg, vocab, policy_model, mix)
    primer_ids = rollouts.primer_ids
    with strategy.scope():
        agent, value_net, optimizer = make_agent(cfg, rollouts.env, rollouts.actor)
    rollouts.attach(agent)
    iteration = tf.Variable(0, dtype=tf.int64)
    beta = tf.Variable(cfg.beta, dtype=tf.float64)  # adapted with kl_target; saved so a resume continues it
    objects = dict(model=policy_model, value_net=value_net, optimizer=optimizer, iteration=iteration,
                   kl_beta=beta)
    targets = list(cfg.reward_targets)  # their adapted weights, saved so a resume continues them
    if cfg.guard:  # halvings of the KL target in force, saved so a resume continues them
        objects["kl_tightened"] = tf.Variable(0, dtype=tf.int64)
    if targets:
        objects["reward_weights"] = tf.Variable([float(cfg.rewards[n]) for n in targets], dtype=tf.float64)
        objects["reward_integrals"] = tf.Variable([0.0] * len(targets), dtype=tf.float64)  # target_control pi
    if resuming:
        run.restore_newest(log=log, partial=True, **objects)
        log(f"resuming from iteration {int(iteration.numpy())} in {run.path}")
    for name, w in zip(targets, objects["reward_weights"].numpy() if targets else ()):
        mix.weights[name] = float(w)  # the environments score with this same mix
    run.truncate_metrics(int(iteration.numpy()))
    ptx_batches = ptx = None
    if cfg.ptx_coef > 0:
        from rlmusic.corpus import join_tunes

        stream = vocab.encode(join_tunes(real_tunes()), what="ptx_data")
        ptx_batches = iter(windows_dataset(stream, cfg.ptx_batch, PTX_LENGTH, cfg.seed, int(iteration.numpy())))
        with strategy.scope():
            ptx = Ptx(policy_model, cfg.ptx_coef, cfg.ptx_batch)
        ptx_nll = tf.function(ptx.nll)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_run_files({"config.yaml": config_lib.dump_yaml(cfg), "vocab.json": vocab.to_json()}, now=not resuming)
    learner = Learner(cfg, agent, optimizer, (rollouts.actor, value_net), policy_model, prior_model, primer_ids, ptx,
                      strategy)
    logger = RunLogger(run, cfg, use_wandb=use_wandb, project=cfg.wandb_project, kind="finetune")
    try:
        bar = progress(total=cfg.iterations, initial=int(iteration.numpy()), desc="finetune", unit="it")
        while int(iteration.numpy()) < cfg.iterations:
            start = time.perf_counter()
            # rollout
            exp, finished = rollouts.collect()
            # the supervised term (ptx_coef) reads a fresh batch of real tunes
            ptx_bits = None
            if ptx_batches is not None:
                x, y = next(ptx_batches)
                ptx.x.assign(x)
                ptx.y.assign(y)
                ptx_bits = float(ptx_nll()) / math.log(2)  # before the update, as the loss sees it
            # shaped rewards -> advantages -> update, by length bucket
            exempt_parts(mix, finished, cfg.exempt_rewards)
            with interrupts.deferred():  # an update is done whole or not at all, so a Ctrl-C checkpoint is exact
                stats = learner.update(exp, finished, float(beta.numpy()))
                iteration.assign_add(1)
            # log
            it = int(iteration.numpy())
            loss, kl = stats["loss"], stats["kl"]
            row = iteration_row(it, finished, mix, **stats, beta=float(beta.numpy()),
                                tunes_per_sec=len(finished) / (time.perf_counter() - start))
            if ptx_bits is not None:
                row["ptx_nll_bits_per_char"] = ptx_bits
            if not math.isfinite(loss):
                raise UserError(f"loss became {loss} at iteration {it}; lower learning_rate")
            kl_target = cfg.kl_target
            if cfg.guard:
                kl_target, tightened = guarded_kl_target(cfg.kl_target, int(objects["kl_tightened"].numpy()),
                                                         row.get(f"rewards/{cfg.guard}"), cfg.guard_floor)
                objects["kl_tightened"].assign(tightened)
                row["kl_target"] = kl_target
            if cfg.kl_target > 0:
                beta.assign(adapt_beta(float(beta.numpy()), kl, kl_target, min(cfg.beta_min, cfg.beta),
                                       cfg.beta_max))
            if targets:
                adapt_targets(cfg, mix, row, objects)
            logger.log(row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{kl:.3f}")
            if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                run.save_checkpoint(it, **objects)
                logger.tune_table(it, finished, mix)
                plot_curves(run)
        bar.close()
    except UserError:  # a failing or hung plugin, a NaN
        if int(iteration.numpy()) > (run.latest_step() or 0):
            run.save_checkpoint(int(iteration.numpy()), **objects)  # keep what was learned before the failure
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the iterations done are kept, and the error line says so
        raise kept_on_interrupt(run, int(iteration.numpy()), objects, exc) from None
    finally:
        logger.close()
    return run.path



def adapt_targets(cfg: FinetuneConfig, mix: RewardMix, row: dict, objects: dict) -> None:
    """Log each targeted reward's weight (the one this iteration's tunes were scored with) in `row`, then adapt it
    to the iteration's mean score by cfg.target_control; the weights and integrals are kept in `objects`, so a
    checkpoint carries them."""
    integrals = objects["reward_integrals"].numpy().tolist()
    for i, (name, target) in enumerate(cfg.reward_targets.items()):
        row[f"weights/{name}"] = mix.weights[name]
        mean = row.get(f"rewards/{name}")
        if mean is None:
            continue
        if cfg.target_control == "pi":
            mix.weights[name], integrals[i] = pi_weight(float(cfg.rewards[name]), mean, target, integrals[i],
                                                        cfg.target_kp, cfg.target_ki)
        else:
            mix.weights[name] = adapt_weight(mix.weights[name], mean, target)
    objects["reward_weights"].assign([mix.weights[n] for n in cfg.reward_targets])
    objects["reward_integrals"].assign(integrals)


def iteration_row(it: int, finished: list[dict], mix: RewardMix, **numbers) -> dict:
    """One metrics row: the numbers given, the tunes ended this iteration, and each reward's mean over them."""
    scores = [info["rewards"] for info in finished]
    row = {"step": it, **numbers, "tunes": len(finished),
           "reward": float(np.mean([mix.total(s) for s in scores])) if scores else 0.0,
           "chars_per_tune": float(np.mean([len(info["tune"]) for info in finished])) if finished else 0.0}
    row.update({f"rewards/{name}": mean for name, mean in mix.means(scores).items()})
    if "valid" in mix.weights:  # weighted, or scored as the gate
        row["valid_rate"] = row["rewards/valid"]
    elif finished:  # the mix does not score it (the default pays for the music): a grammar fault still shows
        from rlmusic.rewards.syntax import valid

        row["valid_rate"] = float(np.mean(valid([info["tune"] for info in finished])))
    if any("dense" in info for info in finished):  # the dense credit per tune, before dense_coef
        row["dense_credit"] = float(np.mean([sum(c for _, c in info.get("dense", ())) for info in finished]))
    return row
