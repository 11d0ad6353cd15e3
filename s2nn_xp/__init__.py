"""S2NN surrogate spiking function for every array library.

One definition of the S2NN spike function (Suetake et al., arXiv:2201.10879)
that computes the same values and surrogate gradients on NumPy, CuPy, JAX,
PyTorch, Dask and any other array-API library, and plugs into the autodiff
transforms of JAX and PyTorch. Importing this package imports no framework;
the library of the array you pass is the only one touched.
"""

from ._api import S2NN, forward, gradient, origin, s2nn, vjp

__version__ = "0.1.0"

__all__ = ["S2NN", "__version__", "forward", "gradient", "origin", "s2nn", "vjp"]
