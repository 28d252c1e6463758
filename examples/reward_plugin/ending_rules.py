"""An example reward plugin for rlmusic: a tune should end on a long note, as folk tunes do.

Install it (`pip install ./examples/reward_plugin`) and the name `long_final_note` works wherever rlmusic takes a
reward name; or use it without installing, by dotted path: `ending_rules:long_final_note` with this folder on
PYTHONPATH.
"""

from rlmusic.abc import scan


def long_final_note(tunes: list[str], **context) -> list[float | None]:
    """1.0 when the last note lasts at least a quarter note, else its length in quarters; None without notes.

    Why: a final note shorter than the beat sounds cut off; jigs and reels end on a dotted quarter or longer.
    Example: `X:1\\nT:t\\nM:6/8\\nL:1/8\\nK:D\\nABA d3|` -> 1.0; `...|ABA d|` -> 0.5.
    """
    scans = context.get("scans") or [scan(t) for t in tunes]
    out = []
    for s in scans:
        melody = s.melody()
        out.append(min(1.0, melody[-1].duration / 0.25) if melody else None)
    return out
