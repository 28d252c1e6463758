"""`preference`: the score a reward model learned from a listener's choices gives a tune (rlmusic/preference.py).

    python -m rlmusic rate --out taste                                   # choose, pair after pair
    python -m rlmusic reward-model --preferences taste/preferences.jsonl --out taste/rm
    python -m rlmusic finetune --set rewards.preference=1.0 --set preference_model=taste/rm

`finetune` points the built-in at `preference_model` before the first tune is scored. For a second reward model
in one mix, or outside `finetune`, make your own and name it by path:

    # my_rewards.py
    from rlmusic.rewards.preference import Preference
    my_taste = Preference("taste/rm")
"""

from __future__ import annotations

from rlmusic.errors import UserError
from rlmusic.rewards.registry import register


class Preference:
    """A reward model's score of each tune (log-odds units: a difference of 1 is e:1 odds of being preferred)."""

    def __init__(self, folder: str | None = None):
        self.folder, self.model = folder, None

    def use(self, folder: str) -> None:
        """Score with the reward model in `folder` from now on (loaded, and so checked, at once)."""
        from rlmusic.preference import PreferenceModel

        self.folder, self.model = folder, PreferenceModel.load(folder)

    def __call__(self, tunes: list[str], **context) -> list[float]:
        if self.model is None:
            if not self.folder:
                raise UserError("reward preference has no reward model: set preference_model=DIR (a folder "
                                "`rlmusic reward-model` wrote)")
            self.use(self.folder)
        return self.model.score(tunes, context.get("scans"))


PREFERENCE = Preference()


@register("preference")
def preference(tunes: list[str], **context) -> list[float]:
    """A listener's learned taste: the score of the reward model named by preference_model (`rlmusic reward-model`).

    In log-odds units: a tune scoring 1 more than another is preferred at odds e:1 by the model. Example: a model
    learned from a listener who always chose the tune ending on the tonic scores `...|d2d2|]` above `...|d2A2|]`
    in D. Without a reward model it is an error naming `preference_model`.
    """
    return PREFERENCE(tunes, **context)
