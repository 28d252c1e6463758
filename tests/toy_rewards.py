"""Rewards for the learning tests: simple enough that a few PPO/REINFORCE iterations must move them."""


def share_of_a(tunes, **context):
    """Share of the characters that are 'A', in [0, 1]."""
    return [t.count("A") / max(1, len(t)) for t in tunes]


def broken(tunes, **context):
    """Raises, to test that a failing plugin stops the run with its name."""
    raise RuntimeError("this rule is broken")


def hangs(tunes, **context):
    """Never returns (for the reward time limit)."""
    import time

    time.sleep(3600)
