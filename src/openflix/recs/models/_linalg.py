"""Dense solves shared by the closed-form item-item models."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.linalg

__all__ = ["solve_spd"]


def solve_spd(
    lhs: npt.NDArray[np.float32], rhs: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """``lhs⁻¹ · rhs`` (or ``lhs⁻¹`` when ``rhs`` is None) for a symmetric positive definite ``lhs``.

    Single precision Cholesky, in place when ``lhs`` and ``rhs`` (``(n, n)``
    and ``(n, m)``) are Fortran-ordered float32 (they are overwritten).  Half
    the memory and about twice the speed of a general double-precision solve —
    what lets a 17,770-title catalog fit.
    """
    lhs = np.asarray(lhs, dtype=np.float32, order="F")
    factor = scipy.linalg.cho_factor(lhs, overwrite_a=True, check_finite=False)
    if rhs is None:
        rhs = np.eye(lhs.shape[0], dtype=np.float32, order="F")
    rhs = np.asarray(rhs, dtype=np.float32, order="F")
    return np.asarray(scipy.linalg.cho_solve(factor, rhs, overwrite_b=True, check_finite=False))
