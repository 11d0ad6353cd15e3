"""The surrogate gradient as few eager PyTorch operations: a CPU kernel.

In eager PyTorch each operation costs a dispatch of a few microseconds, which
at the sizes of a spiking layer (10^3 to 10^5 values a step) is most of the
time. :func:`s2nn_xp._math.gradient` blends its two branches with the spike,
so that every derivative of it is exact; where nothing differentiates the
gradient (a first-order backward, a plain call), the same branch values can
be computed in fewer operations and blended by one ``lerp`` with the spike
as its weight (exact at 0 and 1, NaN for NaN). This module restates
``_math``'s branches for that case, operation for operation, so that its
results are bit for bit those of ``_math`` (the tests check that over the
special values and every dtype).

Only for tensors no autodiff system records, with Python-number parameters
(:func:`s2nn_xp.torch._plain_eager`).
"""

from __future__ import annotations

import torch

__all__ = ["gradient", "spike"]

# The guard of _math's sigmoid branch: its input is clipped to
# [max(-1000 / alpha, -largest), 0].
_EXP_FLOOR = -1000.0


def gradient(
    x: torch.Tensor,
    alpha: float,
    beta: float,
    cotangent: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``gradient(x, alpha, beta)`` (times ``cotangent``) in ``x``'s dtype.

    ``x`` is in its compute dtype (float32 or float64); ``cotangent``, if
    given, has ``x``'s shape and dtype; ``out`` receives the result (it may
    be of a narrower dtype: the result is rounded once, into it).
    """
    lowest = max(_EXP_FLOOR / alpha, -torch.finfo(x.dtype).max)
    e = torch.clamp(x, lowest, 0.0).mul_(alpha).exp_()
    denominator = torch.add(e, 2.0).mul_(e).add_(1.0)
    bell = e.mul_(alpha).div_(denominator)
    # The tail's input clipped at 0, not _math's -0.5: the same values where
    # it is selected (x >= 0), and no overflow of beta / 0.5 for a beta near
    # the dtype's largest where it is not (lerp would carry inf * 0 = NaN).
    tail = torch.clamp(x, min=0.0).add_(1.0)
    tail = torch.div(beta, tail) if beta != 1.0 else tail.reciprocal_()
    # lerp is exact at weights 0 and 1 for finite ends (the guards' promise)
    # and NaN for a NaN weight: the blend of _math in one operation.
    grad = torch.lerp(bell, tail, spike(x), out=bell)
    if cotangent is not None:
        grad.mul_(cotangent)
    if out is None:
        return grad
    return out.copy_(grad)


def spike(x: torch.Tensor) -> torch.Tensor:
    """``_math.forward``: ``floor(clip(x, -1, 0)) + 1``, NaN for NaN."""
    return torch.clamp(x, -1.0, 0.0).floor_().add_(1.0)
