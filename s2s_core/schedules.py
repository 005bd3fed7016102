"""Schedules over training steps: the teacher-forcing ratio and the learning rate."""

from __future__ import annotations

import math

TF_SCHEDULES = ("constant", "linear", "inverse_sigmoid")


def teacher_forcing_ratio(
    schedule: str, step: int, start: float, floor: float, decay_steps: int
) -> float:
    """Probability of feeding the true previous token at ``step``.

    ``constant``: always ``start``. ``linear``: from ``start`` down to ``floor`` over
    ``decay_steps``. ``inverse_sigmoid`` (Bengio et al. 2015, scheduled sampling):
    ``k / (k + exp(step / k))`` with ``k`` chosen so the curve crosses the midpoint at
    ``decay_steps / 2``, rescaled between ``floor`` and ``start``.
    """
    if schedule == "constant":
        return start
    if schedule == "linear":
        frac = min(1.0, step / max(1, decay_steps))
        return start - (start - floor) * frac
    if schedule == "inverse_sigmoid":
        k = _inverse_sigmoid_k(decay_steps / 2)
        exponent = min(step / k, 700.0)  # keep exp finite
        return floor + (start - floor) * k / (k + math.exp(exponent))
    raise ValueError(f"teacher forcing schedule must be one of {TF_SCHEDULES}, got {schedule!r}")


def _inverse_sigmoid_k(midpoint: float) -> float:
    """Solves k = exp(midpoint / k) (the curve equals 1/2 at ``midpoint``) by fixed point."""
    k = max(1.0, midpoint / 5)
    for _ in range(100):
        k = midpoint / math.log(k) if k > 1.0 else midpoint / 0.5
    return max(k, 1.0 + 1e-6)


def warmup_lr(base_lr: float, step: int, warmup_steps: int, decay_factor: float) -> float:
    """Linear warmup to ``base_lr``, times the factor the plateau rule has decayed it by."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base_lr * warm * decay_factor
