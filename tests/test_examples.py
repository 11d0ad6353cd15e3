"""The training example runs, shortened, in each framework's session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._support import selected_backends

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
FRAMEWORKS = [f for f in ("torch", "jax") if f in selected_backends()]
if not FRAMEWORKS:
    pytest.skip(
        "neither the torch nor the jax backend is selected", allow_module_level=True
    )
pytest.importorskip("sklearn", reason="the examples need scikit-learn's digits data")


def _load_example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnable"])
def test_short_training_learns(framework, learnable):
    pytest.importorskip(framework)
    example = _load_example()
    argv = ["--framework", framework, "--epochs", "4", "--hidden", "64"]
    (result,) = example.main(argv + (["--learnable"] if learnable else []))
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.accuracies[-1] > 0.8  # chance is 0.1
    assert 0.05 < result.hidden_spike_rate < 0.95
    if learnable:
        assert result.alpha.shape == result.beta.shape == (64,)
        assert np.all(result.alpha > 0)
        assert not np.allclose(result.alpha, 4.0)  # the parameters did train
        assert not np.allclose(result.beta, 1.0)
    else:
        assert result.alpha is None


def test_a_missing_library_is_said_before_any_training(monkeypatch, capsys):
    """With torch but no JAX, --framework both trained PyTorch's network,
    then failed with JAX's ModuleNotFoundError."""
    example = _load_example()
    trained = []
    monkeypatch.setattr(example, "load_data", lambda seed: trained.append(seed))
    import_module = importlib.import_module

    def without_jaxlib(name, *args):
        if name == "jax":  # installed, its jaxlib not: an ImportError of its own
            raise ImportError("jax requires jaxlib to be installed")
        return import_module(name, *args)

    monkeypatch.setattr(example.importlib, "import_module", without_jaxlib)
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--framework", "both", "--epochs", "1"])
    assert exit_info.value.code == 2
    assert not trained
    assert (
        "jax does not import (jax requires jaxlib to be installed): python -m pip "
        'install "s2nn-xp[jax]"'
    ) in capsys.readouterr().err


def test_frameworks_agree():
    """Same data, initial weights, batches and Adam: nearly the same run."""
    if len(FRAMEWORKS) < 2:
        pytest.skip("needs the torch and jax backends in one environment")
    example = _load_example()
    torch_run, jax_run = example.main(["--epochs", "3", "--hidden", "32"])
    np.testing.assert_allclose(torch_run.losses, jax_run.losses, rtol=0.05)
