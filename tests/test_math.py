"""The array-API math against independent references, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import s2nn_xp
from tests._support import (
    SPECIAL_X,
    backend_name,
    ref_forward,
    ref_gradient,
    ref_origin,
    reference,
    to_numpy,
    ulp_error,
    xp_assert_close,
)


def test_special_values_float64(xp):
    x = xp.asarray(SPECIAL_X, dtype=xp.float64)
    for fn, ref in [
        (s2nn_xp.forward, ref_forward),
        (s2nn_xp.origin, ref_origin),
        (s2nn_xp.gradient, ref_gradient),
    ]:
        xp_assert_close(
            fn(x), reference(ref, SPECIAL_X), xp=xp, rtol=4e-16, dtype=xp.float64
        )
