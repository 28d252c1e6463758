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


def exits(tunes, **context):
    """Calls sys.exit(0) while scoring: must not end the command quietly with success."""
    import sys

    sys.exit(0)


def interrupts(tunes, **context):
    """Raises KeyboardInterrupt itself (no Ctrl-C was pressed)."""
    raise KeyboardInterrupt


def slow(tunes, **context):
    """Takes 0.5 s per call: a run that is still going when a test signals it."""
    import time

    time.sleep(0.5)
    return [0.0 for _ in tunes]
