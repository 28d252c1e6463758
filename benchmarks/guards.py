"""Realness guards with other settings than the built-in `realness_odds`, named by path in benchmark presets
(`guards:strong`); `reward_designs.py` runs `finetune` from this folder, where `python -m` finds this module.

    strong   the classifiers exactly as `evaluate` measures realness with (the text view's C = 10, not 1)
"""

from rlmusic.rewards.discriminator import OddsGuard

strong = OddsGuard(text_c=10.0)
