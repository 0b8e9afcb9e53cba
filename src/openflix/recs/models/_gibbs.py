"""Numba kernels of the Gibbs sampler behind :class:`~openflix.recs.models.bayes.BayesianSVDpp`.

Each kernel updates one block of parameters for every member (or title) in a
loop compiled by numba, keeping the per-rating residual ``e`` in sync.  They
release the GIL, so independent chains run in parallel threads, and they call
no BLAS: threaded OpenBLAS workers would spin against the other chain.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["group_by", "residual", "sample_bias", "sample_factor", "sample_hyper", "sample_implicit"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True, fastmath=False, nogil=True)
def _chol_sample(prec: F64, rhs: F64, z: F64, out: F64) -> None:
    """out = prec^-1 rhs + L^-T z  with prec = L L^T (k x k, in-place on prec)."""
    k = prec.shape[0]
    # Cholesky (lower) in place
    for j in range(k):
        s = prec[j, j]
        for m in range(j):
            s -= prec[j, m] * prec[j, m]
        d = np.sqrt(s)
        prec[j, j] = d
        for i in range(j + 1, k):
            s = prec[i, j]
            for m in range(j):
                s -= prec[i, m] * prec[j, m]
            prec[i, j] = s / d
    # forward solve L w = rhs
    w = np.empty(k)
    for i in range(k):
        s = rhs[i]
        for m in range(i):
            s -= prec[i, m] * w[m]
        w[i] = s / prec[i, i]
    # back solve L^T x = w + z   -> x = mean + L^-T z
    for i in range(k - 1, -1, -1):
        s = w[i] + z[i]
        for m in range(i + 1, k):
            s -= prec[m, i] * out[m]
        out[i] = s / prec[i, i]


@njit(cache=True, fastmath=True, nogil=True)
def sample_bias(indptr: I64, pos: I64, e: F64, wr: F64, b: F64, lam: float, mu: float, noise: F64) -> None:
    """Gibbs step for one bias vector b (n_rows,).

    e: residual per rating (updated in place); wr: noise precision per rating.
    """
    n = b.shape[0]
    for u in range(n):
        s = 0.0
        sw = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            w = wr[pos[p]]
            s += w * (e[pos[p]] + b[u])
            sw += w
        prec = lam + sw
        nb = (lam * mu + s) / prec + noise[u] / np.sqrt(prec)
        d = nb - b[u]
        for p in range(indptr[u], indptr[u + 1]):
            e[pos[p]] -= d
        b[u] = nb


@njit(cache=True, fastmath=True, nogil=True)
def sample_factor(
    indptr: I64,
    other: I64,
    pos: I64,
    e: F64,
    wr: F64,
    other_f: F64,
    base: F64,
    full: F64,
    lam: F64,
    mu: F64,
    noise: F64,
    S: F64,
    g: F64,
    want_moments: bool,
) -> None:
    """Gibbs step for the explicit factors `base` (n_rows x k).

    full (n_rows x k) is the effective factor (base + implicit part); it is shifted
    by the change of base. other_f: factors of the other side (n_other x k). e: residual
    per rating (updated); wr: noise precision per rating.
    If want_moments: S[u] = sum_o w O_o O_o^T (flattened k*k) and
    g[u] = sum_o w O_o e_uo with the updated residuals (inputs of sample_implicit).
    """
    n, k = base.shape
    kk = k * k
    for u in range(n):
        acc = np.zeros(kk)
        rhs = np.zeros(k)
        prec = np.empty((k, k))
        out = np.empty(k)
        for p in range(indptr[u], indptr[u + 1]):
            o = other[p]
            w = wr[pos[p]]
            t = e[pos[p]]
            for a in range(k):
                t += base[u, a] * other_f[o, a]
            for a in range(k):
                oa = w * other_f[o, a]
                rhs[a] += oa * t
                for c in range(k):
                    acc[a * k + c] += oa * other_f[o, c]
        if want_moments:
            for q in range(kk):
                S[u, q] = acc[q]
        for a in range(k):
            rhs[a] += lam[a] * mu[a]
            for c in range(k):
                prec[a, c] = acc[a * k + c]
            prec[a, a] += lam[a]
        _chol_sample(prec, rhs, noise[u], out)
        if want_moments:
            for a in range(k):
                g[u, a] = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            o = other[p]
            d = 0.0
            for a in range(k):
                d += (out[a] - base[u, a]) * other_f[o, a]
            t = e[pos[p]] - d
            e[pos[p]] = t
            if want_moments:
                w = wr[pos[p]] * t
                for a in range(k):
                    g[u, a] += other_f[o, a] * w
        for a in range(k):
            full[u, a] += out[a] - base[u, a]
            base[u, a] = out[a]


@njit(cache=True, fastmath=True, nogil=True)
def sample_implicit(
    jptr: I64, jrows: I64, norm: F64, S: F64, g: F64, Y: F64, full: F64, lam: F64, mu: F64, noise: F64
) -> None:
    """Gibbs step (sequential over j) for implicit factors Y (n_implicit x k).

    Row u (a user for Y, an item for Z) has full_u = base_u + norm_u sum_{j in N(u)} Y_j.
    jptr/jrows list, for each implicit j, the rows u with j in N(u). S (n_rows x k*k)
    and g (n_rows x k) are the precision-weighted moments written by sample_factor;
    g is kept in sync here, the per-rating residual must be recomputed afterwards.
    """
    nj, k = Y.shape
    kk = k * k
    acc = np.empty(kk)
    prec = np.empty((k, k))
    rhs = np.empty(k)
    out = np.empty(k)
    for j in range(nj):
        acc[:] = 0.0
        rhs[:] = 0.0
        for p in range(jptr[j], jptr[j + 1]):
            u = jrows[p]
            w = norm[u]
            w2 = w * w
            for q in range(kk):
                acc[q] += w2 * S[u, q]
            for a in range(k):
                rhs[a] += w * g[u, a]
        # data precision times current Y_j re-adds Y_j's own contribution to g
        for a in range(k):
            s = 0.0
            for c in range(k):
                s += acc[a * k + c] * Y[j, c]
                prec[a, c] = acc[a * k + c]
            rhs[a] += s + lam[a] * mu[a]
            prec[a, a] += lam[a]
        _chol_sample(prec, rhs, noise[j], out)
        for a in range(k):
            out[a] -= Y[j, a]  # delta
        for p in range(jptr[j], jptr[j + 1]):
            u = jrows[p]
            w = norm[u]
            for a in range(k):
                s = 0.0
                for c in range(k):
                    s += S[u, a * k + c] * out[c]
                g[u, a] -= w * s
                full[u, a] += w * out[a]
        for a in range(k):
            Y[j, a] += out[a]


@njit(cache=True, fastmath=True, nogil=True)
def residual(users: I64, items: I64, r: F64, mu: float, b: F64, c: F64, U: F64, V: F64, e: F64) -> None:
    """e = r - (mu + b_u + c_i + U_u . V_i) for every training rating."""
    k = U.shape[1]
    for n in range(r.shape[0]):
        u = users[n]
        i = items[n]
        s = mu + b[u] + c[i]
        for a in range(k):
            s += U[u, a] * V[i, a]
        e[n] = r[n] - s


def group_by(rows: I64, cols: I64, n_rows: int) -> tuple[I64, I64, I64]:
    """Group rating indices by `rows`: returns (indptr, cols sorted by row, rating idx)."""
    order = np.argsort(rows, kind="stable").astype(np.int64)
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols[order].astype(np.int64), order


def sample_hyper(
    theta: F64, rng: np.random.Generator, a0: float = 1.0, b0: float = 1.0, gamma0: float = 1.0
) -> tuple[F64, F64]:
    """Exact joint draw from the Normal-Gamma posterior of each column of theta.

    Prior per column: lam ~ Gamma(a0, rate b0), mu | lam ~ N(0, 1/(gamma0 lam)).
    theta: (n, k). Returns (lam[k], mu[k]).
    """
    n = theta.shape[0]
    mean = theta.mean(0) if n else np.zeros(theta.shape[1])
    ss = ((theta - mean) ** 2).sum(0) + n * gamma0 * mean**2 / (n + gamma0)
    lam = rng.gamma(a0 + 0.5 * n, 1.0 / (b0 + 0.5 * ss))
    mu = n * mean / (n + gamma0) + rng.standard_normal(theta.shape[1]) / np.sqrt((n + gamma0) * lam)
    return lam, mu
