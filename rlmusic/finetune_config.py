"""The configuration of `python -m rlmusic finetune`: one dataclass, a docstring per field, checked when made
(`rlmusic.config.Checked`); saved in the run directory, so a run says how it was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from rlmusic.config import Checked, FieldError, Range
from rlmusic.corpus import DEFAULT_PRIMER
from rlmusic.model import ModelConfig
from rlmusic.rewards.mix import DEFAULT_TIME_LIMIT, parse_gates

# The default design (configs/finetune/default.yaml): the mask makes every tune valid, so the reward goes to the
# music, where the shipped model is furthest from the tradition, and a realness guard charges for writing unlike
# it. docs/measurements.md ("The realness guard in the loop") measures it against the shipped model and the corpus.
MUSIC_REWARDS = {"strain_cadences": 1.0, "phrase_repeats_dense": 1.0, "answers": 1.0, "form": 1.0,
                 "leaps_resolved": 0.25, "no_excessive_repeats": 0.5, "typical_guard": 0.5, "realness_odds": 2.0}


@dataclass
class FinetuneConfig(Checked):
    rewards: dict[str, float] = field(default_factory=lambda: dict(MUSIC_REWARDS))
    """Reward name (built-in, entry point or module:function) -> weight. The default pays for the music (cadences,
    phrases that come back, a second strain that answers the first, form) under the realness guard
    `realness_odds`; syntax is the mask's job (`constrain`). `rlmusic.envs.DEFAULT_REWARDS` is the design that
    buys syntax by reward (benchmarks/presets/syntax_by_reward.yaml)."""
    gate: str = "typical_guard,no_excessive_repeats"
    """Rewards (comma-separated) whose scores scale all the others (empty: plain weighted sum); `name@floor` is a
    soft gate, scaling them by floor + (1 - floor) x its score; see AbcCompositionEnv. The default: a tune whose
    shape no real tune has, or that repeats a note 5 times, earns nothing. Unmasked (`constrain: none`), gate on
    validity too: without enough_bars the policy learns to write 2-bar fragments (docs/measurements.md)."""
    reward_targets: dict[str, float] = field(default_factory=dict)
    """Reward name -> the mean score over an iteration's tunes to hold it at: after every iteration that reward's
    weight is adapted as beta is to kl_target (up to +-10 % per iteration), raised while the tunes score below the
    target and lowered above it. For what the tradition has in a proportion, not in every tune: `form: 0.36` asks
    for the corpus's mean form score, where a fixed weight is traded away late in a run and a hard gate puts
    nearly every tune in strains (docs/measurements.md). The reward needs a positive weight and must not be a gate. Empty: off."""
    target_control: Literal["ratio", "pi"] = "ratio"
    """How reward_targets adapt a weight. "ratio": multiplied by up to +-10 % per iteration, as beta (measured on
    form: it winds up 12x while the policy lags, then overshoots, docs/measurements.md). "pi": the weight is a Lagrange
    multiplier under proportional-integral control (PID Lagrangian, Stooke et al. 2020): w0 x (1 + target_kp x e +
    target_ki x sum of e), e = (target - mean) / target clipped to +-1, w0 the weight in rewards, the integral
    term held within +-10 (anti-windup). It goes below 0: a mean above target is pushed back, not only no
    longer pushed up."""
    target_kp: Annotated[float, Range(0)] = 4.0
    """"pi": the proportional gain (per unit of relative error, in units of the configured weight)."""
    target_ki: Annotated[float, Range(0)] = 1.0
    """"pi": the integral gain (per unit of summed relative error; 1.0: a mean 10 % under target for 10
    iterations adds the configured weight once)."""
    dense_coef: Annotated[float, Range(0)] = 0.5
    """Weight of the dense credit (AbcCompositionEnv's `info["dense"]`): each reward's per-position credit (-1
    where the first syntax problem arises, where abc2midi's first error points, at each wrong bar, at each note
    out of key, times the reward's weight) added at the step that wrote that character, beside the end-of-tune
    reward. 0: end-of-tune reward only."""
    neutral_headers: str = "K,M,length"
    """Header fields, comma-separated (e.g. "K,M"), whose choice earns nothing: each tune's reward is re-centred
    on the mean reward of the iteration's tunes with the same value of the field (rlmusic.neutral.neutral_offsets),
    so the policy cannot gain by writing every tune in the key or meter where the rewards come easiest (the tunes'
    keys then move only as the KL term lets them). `length` groups the tunes by their bars with notes, 8 to a
    group (a preference reward paid for longer tunes: 75 -> 102 notes in 30 iterations, docs/measurements.md).
    Logged as `neutral_offset`, the mean size of the correction. Empty: off. The default: key, meter and length
    (a policy of the music rewards wrote 62 % of its tunes in K:G, where cadences come easiest)."""
    neutral_return: Literal["task", "shaped"] = "task"
    """What `neutral_headers` re-centres. "task": the task return, and `length` in groups of 8 bars. "shaped":
    the return PPO learns from, the task return plus each tune's KL charge (-beta x its summed log pi - log
    p_prior, which grows with the tune's length wherever the policy has left the prior), and for `length` also
    the trend over characters left inside the groups (rlmusic.neutral.neutral_offsets): neither a shorter tune's
    smaller KL charge nor a reward that comes easier in fewer bars pays for shortening the tunes."""
    neutral_exempt: str = ""
    """Rewards, comma-separated, whose part of each tune's return `neutral_headers` leaves as it is: a realness
    guard (e.g. `realness_odds`) that should still price a key, meter or length real tunes rarely have, which
    re-centring by that field would take away. Not a gate (a gate scales every other reward)."""
    preference_model: str = ""
    """Folder of a reward model (`rlmusic reward-model`) that the built-in reward `preference` scores with."""
    rewards_time_limit: Annotated[float, Range(0)] = DEFAULT_TIME_LIMIT
    """Seconds a reward may take on one batch of tunes before the run stops with an error naming it (0: none)."""
    beta: Annotated[float, Range(0)] = 0.1
    """Weight of the KL penalty to the pretrained model, per character (the start value with `kl_target`)."""
    prior_top_p: Annotated[float, Range(0, 1, min_open=True)] = 1.0
    """KL-control to the prior's nucleus: below 1, the prior the KL penalty measures against is (1 - prior_tail) x
    the pretrained model's distribution cut to its top-p characters (renormalised) + prior_tail x the whole one.
    A character from the prior's tail then costs beta x about -ln(prior_tail) more at the step that wrote it:
    the policy learns to leave out the unlikely characters that sampling at top-p 0.95 leaves out (the invalid
    tunes of the shipped model are mostly such slips, docs/measurements.md). 1.0: the pretrained model itself."""
    prior_tail: Annotated[float, Range(0, 1, min_open=True, max_open=True)] = 0.01
    """With prior_top_p < 1: the share of the whole prior mixed into its nucleus (keeps the penalty finite)."""
    kl_target: Annotated[float, Range(0)] = 0.1
    """Adaptive KL control (Ziegler et al. 2019): if > 0, beta is adjusted after every iteration to hold the KL to
    the pretrained model near this many nats per character. 0: beta stays fixed."""
    beta_min: Annotated[float, Range(0)] = 0.05
    """Floor of the adapted beta (a `beta` started below it is its own floor: `beta: 0` stays without a KL
    penalty). Below its KL target the controller lowers beta by up to 10 % per iteration without end (measured:
    4e-7 after 120 iterations, docs/measurements.md), and then nothing holds the policy to the pretrained model; the floor
    keeps a fixed minimum pull (measured: by itself it does not stop the late loss of form, docs/measurements.md)."""
    beta_max: Annotated[float, Range(0)] = 0.0
    """Ceiling of the adapted beta (0: none; else at least beta). Above its KL target the controller
    raises beta by up to 10 % per iteration without end: with a prior the policy starts far from
    (`prior_top_p` < 1) the KL stays above target and beta reached 27.6 in 60 iterations (docs/measurements.md), where the KL
    penalty outweighs every reward; the ceiling holds it there instead."""
    guard: str = ""
    """A reward whose mean must hold while the others are pursued ("" = none; `typical` measures how typical a
    tune's shape is of the corpus): after an iteration whose tunes score it below `guard_floor`, the KL target is
    halved (again after each further such iteration, down to 1/16) and it returns a step per iteration once the
    guard is back (rlmusic/control.py). Scored with weight 0 if `rewards` does not weight it; logged as
    `kl_target`."""
    guard_floor: Annotated[float, Range(0)] = 0.0
    """The guard's lowest acceptable iteration mean (the shipped model's own mean, less a margin, is the natural
    choice: `evaluate --rewards GUARD` measures it)."""
    ptx_coef: Annotated[float, Range(0)] = 0.1
    """Weight of the supervised loss on real tunes (PPO-ptx, InstructGPT): the agent's loss gets ptx_coef x the
    cross-entropy of a batch of windows from real tunes, a fresh batch each iteration. 0: off."""
    ptx_data: list[str] = field(default_factory=list)
    """Sources of the real tunes (as pretrain's data.sources): what ptx_coef's supervised loss trains on and what
    the realness rewards (`realness_odds`, `typical_guard`, `realness`) compare with, as the rewards' context
    `real_tunes`. Empty: the pretrained run's training split (its data.sources, val_fraction and seed), so the
    held-out tunes stay held out and a model pretrained on other music is guarded toward that music."""
    ptx_batch: Annotated[int, Range(1)] = 16
    """Windows of 128 characters per supervised step."""
    discount: Annotated[float, Range(0, 1)] = 1.0
    """Discount of future rewards. 1.0: a tune is one episode scored at its end; below 1 (PPOAgent's own default
    is 0.99) the end-of-tune reward fades over hundreds of characters and short tunes win."""
    gae_lambda: Annotated[float, Range(0, 1)] = 1.0
    """PPO: lambda of generalised advantage estimation. 1.0: each character's advantage is the tune's actual
    return minus the value estimate. Below 1 (PPO's default is 0.95) the end-of-tune reward reaches a character
    T steps earlier with weight lambda^T (0.95^200 ~ 0) and the rest rests on the young value network, which
    overrates the character that ends a tune: tunes shrank (measured: 255 -> 100 chars in 13 iterations)."""
    agent: Literal["ppo", "reinforce", "dpo"] = "ppo"
    """"ppo" (tf-agents PPOClipAgent), "reinforce" (ReinforceAgent with a value baseline), or "dpo" (Direct
    Preference Optimisation on `preferences`, rlmusic/dpo.py: no rewards, no rollouts)."""
    preferences: str = ""
    """agent dpo: the preferences.jsonl of `rlmusic rate` (or any file of its format) to learn from."""
    dpo_beta: Annotated[float, Range(0, min_open=True)] = 0.1
    """agent dpo: how far the policy may move from the pretrained model for a margin of preference (DPO's beta)."""
    iterations: Annotated[int, Range(1)] = 60
    """Collect-and-update iterations in total (a re-run with a higher value continues)."""
    tunes_per_iteration: Annotated[int, Range(1)] = 64
    """Tunes collected per iteration (one environment each, stepped as a batch)."""
    update_buckets: Annotated[int, Range(1)] = 4
    """PPO: the iteration's tunes, sorted by length, are split into this many groups for the update, each cut
    to its own longest tune (less padding to run the networks over); the loss is the whole batch's either way
    (see rlmusic.learner). 1: one batch padded to the longest tune. REINFORCE always uses 1."""
    max_length: Annotated[int, Range(2)] = 600
    """Characters per tune (after the primer) before the episode is truncated."""
    primer: str = DEFAULT_PRIMER
    """Every tune starts with this text (a header asks for a key or meter); must end with a newline."""
    constrain: Literal["syntax", "none"] = "syntax"
    """"syntax": the policy draws each character from those the ABC grammar allows (the environment's action
    masks, rlmusic/grammar.py): every tune is valid ABC and ends within max_length, the stored masks make PPO's
    ratios, entropy and the KL to the (equally masked) prior consistent, and no reward has to buy syntax. The
    supervised ptx term stays unmasked: its windows start mid-tune, where the grammar's state is unknown, and
    raising the model's probability of a real character raises its masked probability too. "none": the raw
    model, as before the grammar."""
    learning_rate: Annotated[float, Range(0, min_open=True)] = 2e-4
    """Adam learning rate of the policy and value networks."""
    num_epochs: Annotated[int, Range(1)] = 4
    """PPO: passes over each batch of tunes."""
    clip: Annotated[float, Range(0, min_open=True)] = 0.2
    """PPO: importance-ratio clipping."""
    entropy: Annotated[float, Range(0)] = 0.0
    """Entropy bonus weight."""
    value_units: Annotated[int, Range(1)] = 128
    """LSTM units of the value network (it has its own embedding and LSTM)."""
    checkpoint_every: Annotated[int, Range(1)] = 10
    """Iterations between checkpoints (the last is always saved)."""
    seed: int = 0
    """Seed of weights of the value network and of the policy's sampling."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where the policy, prior and value networks and the update run ("auto": a GPU when TensorFlow sees one);
    the environments and rewards always run on the CPU."""
    strategy: Literal["auto", "none", "mirrored"] = "auto"
    """tf.distribute for the update: "mirrored" splits each bucket's tunes over every visible GPU (or logical CPU
    device); "auto": mirrored with several GPUs, else none. Collection and shaping run once, as without."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Filled from the pretrained run (saved so `sample` and `evaluate` can load this run)."""
    pretrained: str = ""
    """The pretrained run directory (filled from --checkpoint)."""
    wandb_project: str = "rlmusic"
    """Weights & Biases project used with --wandb."""

    @property
    def neutral_fields(self) -> list[str]:
        """`neutral_headers` as a list of fields."""
        return [f.strip() for f in self.neutral_headers.split(",") if f.strip()]

    @property
    def exempt_rewards(self) -> list[str]:
        """`neutral_exempt` as a list of reward names."""
        return [n.strip() for n in self.neutral_exempt.split(",") if n.strip()]

    def __post_init__(self):
        super().__post_init__()
        for name in self.neutral_fields:
            if name != "length" and not (len(name) == 1 and name.isalpha()):
                raise FieldError("neutral_headers", f"header fields are letters or `length`, comma-separated "
                                                    f"(\"K,M,length\"), got {name!r}")
        if "preference" in self.rewards and not self.preference_model:
            raise FieldError("preference_model", "the reward `preference` needs a reward model: "
                                                 "--set preference_model=DIR (made by `rlmusic reward-model`)")
        if 0 < self.beta_max < self.beta:  # the floor in force is min(beta_min, beta): never above beta
            raise FieldError("beta_max", f"the ceiling {self.beta_max} is below the start value beta "
                                         f"({self.beta}); 0 for none")
        if self.guard and self.guard not in self.rewards:
            self.rewards = {**self.rewards, self.guard: 0.0}  # scored and logged, earning nothing
        gates = parse_gates(self.gate)
        for name in self.exempt_rewards:
            if name not in self.rewards or name in gates:
                raise FieldError("neutral_exempt", f"{name!r} is not a weighted reward of this run (gates scale "
                                                   f"the others and cannot be left out)")
        for name, target in self.reward_targets.items():
            if name in gates:
                raise FieldError(f"reward_targets.{name}", "a gate's weight is not adapted; target a reward")
            if not self.rewards.get(name, 0) > 0:
                raise FieldError(f"reward_targets.{name}", "needs a positive weight in rewards (the weight is adapted)")
            if not isinstance(target, (int, float)) or not 0 < target <= 1:
                raise FieldError(f"reward_targets.{name}", f"the target mean must be in (0, 1], got {target!r}")
