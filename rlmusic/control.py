"""The controllers of fine-tuning: small feedback loops that each adjust one number after every iteration.

- `adapt_beta`: the KL coefficient, toward a KL target (Ziegler et al. 2019);
- `adapt_weight`, `pi_weight`: a reward's weight, toward a target mean score (`reward_targets`);
- `guarded_kl_target`: the KL target itself, tightened while a guard reward's mean is below its floor
  (`guard`, `guard_floor`): when a gain starts being paid for with what the guard measures, the policy is held
  closer to the pretrained model until the guard recovers.
"""

from __future__ import annotations

KL_ADAPT_RATE = 0.5  # beta changes by at most 10 % per iteration (error clipped to +-0.2, as Ziegler et al.)


def adapt_beta(beta: float, kl: float, target: float, floor: float = 0.0, ceiling: float = 0.0) -> float:
    """Proportional control of the KL coefficient: raise beta when the KL is above target, lower it below,
    never below `floor` nor above `ceiling` (0: no ceiling)."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    beta = max(floor, beta * (1.0 + KL_ADAPT_RATE * error))
    return min(beta, ceiling) if ceiling > 0 else beta


def adapt_weight(weight: float, mean: float, target: float) -> float:
    """Proportional control of a reward's weight toward `target` mean score: up while below it, down above."""
    error = min(max(1.0 - mean / target, -0.2), 0.2)
    return weight * (1.0 + KL_ADAPT_RATE * error)


PI_WINDUP = 10.0  # the integral term's bound, in units of the configured weight


def pi_weight(w0: float, mean: float, target: float, integral: float, kp: float, ki: float) -> tuple[float, float]:
    """Proportional-integral control of a reward's weight (a Lagrange multiplier on `mean == target`): returns the
    next weight and the next integral of the relative error. The integral stops where ki x integral reaches
    +-PI_WINDUP, so a long lag does not leave a weight that takes as long to unwind."""
    error = min(max(1.0 - mean / target, -1.0), 1.0)
    integral += error
    if ki > 0:
        integral = min(max(integral, -PI_WINDUP / ki), PI_WINDUP / ki)
    return w0 * (1.0 + kp * error + ki * integral), integral


GUARD_STEPS = 4  # the KL target is halved at most this many times: 1/16 of its configured value


def guarded_kl_target(kl_target: float, tightened: int, guard_mean: float | None, floor: float) -> tuple[float, int]:
    """The KL target for the next iteration and the new count of halvings: one more while the guard's mean is
    below `floor` (at most GUARD_STEPS), one fewer once it is back at or above it; a guard that scored no tune
    (None) changes nothing."""
    if guard_mean is not None:
        tightened = min(tightened + 1, GUARD_STEPS) if guard_mean < floor else max(tightened - 1, 0)
    return kl_target * 0.5 ** tightened, tightened
