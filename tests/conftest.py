"""Test fixtures: one ``xp`` fixture over the registry's array backends.

The backends run are those named (comma-separated) in the environment
variable ``S2NN_XP_BACKENDS``; by default every backend in the registry
(``s2nn_xp._backends``). Each nox session names one, so a missing library is
a skip there, never a silent pass.

A test that needs a capability says so with a marker generated from the
registry's :class:`~s2nn_xp._backends.Capability` (``requires_autodiff``,
``requires_jit``, ``requires_float16``, ``requires_bfloat16``,
``requires_host_values``, ``requires_mutable_arrays``); the ``xp`` fixture
skips the backends that lack it.
"""

from __future__ import annotations

import sys

import pytest

from s2nn_xp._backends import BACKENDS, Capability, get
from tests._support import backend_of, load_backend, selected_backends


def _marker(capability: Capability) -> str:
    return f"requires_{capability.value}"


def pytest_configure(config):
    for capability in Capability:
        config.addinivalue_line(
            "markers",
            f"{_marker(capability)}: run only on backends with "
            f"{capability.value} (from the backend registry)",
        )


@pytest.fixture(autouse=True)
def _float64_kept_on():
    """Keep float64 on for every test in each selected backend in use.

    Loading a backend turns it on (JAX's ``jax_enable_x64``); some libraries
    that tests import (brainstate, braintools) turn it off again when they
    load.
    """
    for name in selected_backends():
        backend = get(name)
        if backend.module.partition(".")[0] in sys.modules:
            backend.enable_float64()


@pytest.fixture(params=selected_backends())
def xp(request):
    """The array namespace of one backend (the library's own module)."""
    marker = request.node.get_closest_marker("backends")
    if marker is not None and request.param not in marker.args:
        pytest.skip(f"test is only for backends {marker.args}")
    # Every skip_backends marker (stacked, or on the class and the test), each
    # naming known backends.
    for marker in request.node.iter_markers("skip_backends"):
        unknown = sorted(set(marker.args) - set(BACKENDS))
        if unknown:
            pytest.fail(f"skip_backends names no backend: {unknown} (reason=...?)")
        if request.param in marker.args:
            reason = marker.kwargs.get("reason", "test does not apply to it")
            pytest.skip(f"{request.param}: {reason}")
    namespace = load_backend(request.param)
    has = backend_of(namespace).capabilities
    for capability in Capability:
        wanted = request.node.get_closest_marker(_marker(capability)) is not None
        if wanted and capability not in has:
            pytest.skip(f"{request.param} has no {capability.value}")
    return namespace
