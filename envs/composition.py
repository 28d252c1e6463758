"""The composition environment: write one ABC tune, one character per step."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlmusic.abc import scan
from rlmusic.constrain import check_constrain, compiled
from rlmusic.corpus import DEFAULT_PRIMER
from rlmusic.errors import UserError
from rlmusic.rewards.mix import RewardMix
from rlmusic.vocab import Vocab

DEFAULT_VOCAB_FILE = Path(__file__).with_name("default_vocab.json")
# The environment's default rewards: a tune that reads as valid ABC and follows the RL Tuner's strongest rules (for
# a policy without the grammar's mask; fine-tuning's default preset pays for the music: rlmusic.finetune_config.MUSIC_REWARDS).
DEFAULT_REWARDS = {"valid": 1.0, "abc2midi_clean": 1.0, "enough_bars": 1.0, "bar_durations": 1.0, "balanced": 0.5,
                   "in_key": 1.0, "no_excessive_repeats": 1.0, "tonic_start_end": 0.5, "repeated_motif": 0.5,
                   "leaps_resolved": 0.25, "form": 2.0}


def default_vocab() -> Vocab:
    """The vocabulary of the embedded corpus (saved with the package; a test checks it against the corpus)."""
    return Vocab(json.loads(DEFAULT_VOCAB_FILE.read_text(encoding="utf-8"))["chars"])


class AbcCompositionEnv(gym.Env):
    """Write an ABC tune one character at a time.

    ## Action Space
    `Discrete(len(vocab))`: the next character of the tune.

    ## Observation Space
    `Discrete(len(vocab))`: the id of the last character of the tune so far (at reset: the primer's last
    character). The policy is recurrent: it carries the rest of the tune in its state, and starts each episode
    from its state after reading the primer (rlmusic.policy does this for the pretrained model).

    ## Rewards
    0 at every step but the last. At the end of the episode the tune (the primer and the text written, without
    the closing blank line) is scored by each reward plugin, and the weighted sum of their scores is the last
    step's reward (a reward that does not apply to the tune, returning None, adds 0). With `dense=True`,
    `info["dense"]` also holds the credit the rewards' dense forms place inside the tune: (character offset in
    the tune, primer included; credit) pairs, -1 at the character where the first scanner problem arises
    (`valid`), where abc2midi's first error points (`abc2midi`, `abc2midi_clean`), at each bar whose length is
    wrong (`bar_durations`, -1/bars) and at each note out of key (`in_key`), times the reward's weight (a gate's
    weight counts as 1 - its floor). A learner that reshapes rewards after the episode (as `rlmusic finetune`
    does) adds them at the steps that wrote those characters; the step rewards themselves stay end-of-tune.
    With `gate` (default "valid"), the other rewards count only in proportion to the gates' scores: an invalid
    tune earns nothing for being in key, so the policy cannot trade validity for easy music-theory points;
    "valid,enough_bars" also stops it from shrinking tunes to fragments that score well on per-tune shares. A gate
    that returns None for a tune (`abc2midi`, `abc2midi_clean` where abc2midi is not installed) does not apply to
    it. A gate written `name@floor` is soft: the others are scaled by floor + (1 - floor) x its score (`form@0.5`: a
    tune `form` scores 0 keeps half). A reward weighted below 0 is a charge the gates do not scale: an invalid tune
    pays it too. `info["tune"]` holds the text and `info["rewards"]` each plugin's score.

    ## Action Masks
    With `constrain="syntax"` (the default of `rlmusic/AbcComposition-v1`) the environment offers, at every step,
    the characters that can continue a valid ABC tune and still end it within `max_length` (rlmusic/grammar.py,
    compiled by rlmusic/constrain.py): `info["action_mask"]` (int8, 1 = allowed) from `reset` and `step`, and
    `action_masks()` as sb3-contrib's MaskablePPO reads it. A policy that draws only allowed characters writes
    valid ABC by construction and always ends its tune. An action the mask forbids is taken all the same (as in
    Gymnasium's own masked environments), but the tune is then invalid, and every action is allowed from there.

    ## Episode End
    Terminated when the tune ends (the agent writes a blank line: two newlines). Truncated when `max_length`
    characters have been written (the primer not counted) without that: a time limit, not an end of the tune
    (never with `constrain="syntax"`: the mask ends every tune in time).

    ## Arguments
    - `vocab`: a `Vocab` or a list of characters (default: the embedded corpus' vocabulary, 109 characters);
    - `rewards`: mapping reward name -> weight (names as `python -m rlmusic rewards` lists them, or
      `module:function`; default `DEFAULT_REWARDS`), or a `rlmusic.rewards.mix.RewardMix` (then `gate` is the
      mix's own) that several environments share;
    - `max_length`: characters per episode before truncation (default 1000);
    - `gate`: reward name(s), comma-separated, whose scores multiply all the others (None: plain weighted sum);
      `name@floor` for a soft gate;
    - `dense`: also compute the dense credit (`info["dense"]`, see Rewards);
    - `primer`: the text every tune starts with (default `X:1\n`; a header such as `X:1\nT:\nM:6/8\nL:1/8\nK:D\n`
      asks for a jig in D). It must end with a newline;
    - `constrain`: "syntax" offers action masks from the ABC grammar (see Action Masks); "none" (the class's
      default, as in v0) offers none.

    ## Version History
    - v0: one character per step, the episode's reward at its last step from a shared reward mix
      (`rlmusic.rewards.mix.RewardMix`), gates scaling the other rewards; `dense` adds `info["dense"]`.
      `DEFAULT_REWARDS` now scores `abc2midi_clean` and `form` where it scored `abc2midi` and `strains` (the
      default fine-tuning preset's rewards; pass `rewards=` for the earlier mix). Gates may be soft
      (`name@floor`). A negative weight is no longer scaled by the gates. The scanner, and so `valid` (the
      default gate) and its dense credit, now also rejects what abc2midi rejects in ties, broken rhythm and
      repeats, at the character at fault (rlmusic/abc_checks.py).
    - v1: action masks from the ABC grammar (`constrain="syntax"`, the default of this id; the class keeps
      "none"): `info["action_mask"]` and `action_masks()`; an episode that follows them is never truncated.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, vocab: Vocab | list[str] | None = None, rewards: dict[str, float] | RewardMix | None = None,
                 max_length: int = 1000, primer: str = DEFAULT_PRIMER, gate: str | list[str] | None = "valid",
                 render_mode: str | None = None, dense: bool = False, constrain: str = "none"):

        self.vocab = default_vocab() if vocab is None else (vocab if isinstance(vocab, Vocab) else Vocab(vocab))
        missing = [c for c in "\nX:K" if c not in self.vocab.index]
        if missing:
            raise UserError(f"vocab: an ABC vocabulary needs {', '.join(map(repr, missing))}")
        if not primer.endswith("\n"):
            raise UserError(f"primer: must end with a newline, got {primer!r}")
        self.vocab.encode(primer, what="primer")
        self.primer = primer
        # Resolved once (unknown names fail here, listing the valid ones); several envs may share one mix.
        self.mix = rewards if isinstance(rewards, RewardMix) else RewardMix(
            DEFAULT_REWARDS if rewards is None else rewards, gates=gate)
        if max_length < 2:
            raise UserError(f"max_length: must be at least 2, got {max_length}")
        self.max_length = max_length
        self.dense = dense
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(self.vocab))
        self.observation_space = spaces.Discrete(len(self.vocab))
        self._start = self.vocab.index[primer[-1]]
        self._chars: list[str] = []
        self.constrain = check_constrain(constrain, "constrain:")
        self.grammar = compiled(tuple(self.vocab.chars)) if constrain == "syntax" else None
        self._start_state = self.grammar.start(primer) if self.grammar else 0
        self._state, self._mask = self._start_state, None
        if self.grammar is not None:
            shortest = self.grammar.distance(self.grammar.states[self._start_state])
            if shortest > max_length:
                raise UserError(f"max_length {max_length}: too short for a valid tune after the primer (the "
                                f"shortest needs {shortest} characters)")

    def action_masks(self) -> np.ndarray:
        """The characters allowed next (bool [vocab]); all of them without `constrain`. Computed once per step."""
        if self._mask is None:
            if self.grammar is None or self._state is None:
                self._mask = np.ones(len(self.vocab), bool)
            else:
                left = self.max_length - (len(self._chars) - len(self.primer))
                self._mask = self.grammar.mask_one(self._state, left)
        return self._mask

    def _info(self, info: dict) -> dict:
        if self.grammar is not None:
            info["action_mask"] = self.action_masks().view(np.int8)  # 1 = allowed, as Gymnasium's masks
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._chars = list(self.primer)
        self._state, self._mask = self._start_state, None
        return self._start, self._info({})

    def step(self, action):
        action = int(action)
        if not 0 <= action < len(self.vocab):
            raise ValueError(f"action {action} outside Discrete({len(self.vocab)})")
        if self._state is not None and self.grammar is not None:
            # a forbidden action is taken as any action is (Gymnasium's masks advise), but leaves the grammar:
            # the tune is invalid, and from there on every action is allowed
            self._state = self.grammar.step_one(self._state, action) if self.action_masks()[action] else None
        self._mask = None
        self._chars.append(self.vocab.chars[action])
        terminated = self._chars[-1] == "\n" and self._chars[-2] == "\n"
        truncated = not terminated and len(self._chars) - len(self.primer) >= self.max_length
        reward, info = 0.0, {}
        if terminated or truncated:
            tune = "".join(self._chars).rstrip("\n")
            context = {"scans": [scan(tune)]}  # one scan for the scores and the dense credit
            scores = self.mix.score([tune], **context)[0]
            reward = self.mix.total(scores)
            info = {"tune": tune, "rewards": scores}
            if self.dense:
                info["dense"] = self.mix.dense([tune], **context)[0]
        return action, float(reward), terminated, truncated, self._info(info)

    def render(self):
        if self.render_mode == "ansi":
            return "".join(self._chars)
        return None
