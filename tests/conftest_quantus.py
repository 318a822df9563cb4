"""Quantus as a test oracle. Quantus 0.6 calls ``numpy.trapz``, which numpy >= 2.4 removed: alias it to
``numpy.trapezoid`` for the tests instead of pinning numpy for the whole package."""

import numpy as np

if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid

import quantus  # noqa: E402

__all__ = ["quantus"]
