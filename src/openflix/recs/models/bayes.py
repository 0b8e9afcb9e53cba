"""Bayesian SVD++ ("flipped"): a rating model fit by Gibbs sampling.

For a rating ``r_ui`` of member ``u`` on title ``i``::

    r_ui ~ N(mu + b_u + c_i + U_u·V_i, 1 / (alpha · s_u))
    U_u  = P_u + |N(u)|^-1/2 · Σ_{j ∈ N(u)} Y_j      (SVD++'s implicit member term)
    V_i  = Q_i + |N(i)|^-1/2 · Σ_{v ∈ N(i)} Z_v      (the same, mirrored for titles)

``N(u)`` are the titles ``u`` rated in the training data, ``N(i)`` the members
who rated ``i``; ``s_u`` is a per-member noise precision with a
``Gamma(a, rate a)`` prior; every parameter group has a Gaussian prior with
Normal-Gamma hyper-priors (as in libFM's MCMC).  Predictions are posterior
means: the average over the kept samples of several independent chains, which
run in parallel threads (see :mod:`openflix.recs.models._gibbs`).

Hyperparameter defaults were chosen on a random 20% validation cut of
MovieLens 100K's ``u1.base`` (never on a test file): 12 factors, per-member
noise with shape 5, two chains of 50 sweeps with 10 of burn-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from openflix.recs.data import Interactions
from openflix.recs.history import History
from openflix.recs.models import _gibbs as g
from openflix.recs.models.base import AT_LEAST_ONE, POSITIVE, Bounds, RatingModel, register

__all__ = ["BayesianSVDpp"]

F64 = npt.NDArray[np.float64]


@register
class BayesianSVDpp(RatingModel):
    """Gibbs-sampled Bayesian matrix factorization with biases and SVD++ implicit terms.

    Parameters
    ----------
    n_factors:
        Latent dimension ``k``.
    n_iter, burn_in:
        Gibbs sweeps per chain, and how many of the first are discarded.
    n_chains, n_threads:
        Independent chains (pooled) and threads running them; results do not
        depend on ``n_threads``.
    user_implicit, item_implicit:
        Use the implicit member / title terms.
    hetero_user:
        Per-member noise precision ``s_u`` (members differ in how noisily they rate).
    noise_shape:
        Shape (= rate) of the Gamma prior of ``s_u``.
    seed:
        Seed of every random draw: a fit is deterministic given it.
    """

    name: ClassVar[str] = "bayes-svdpp"
    param_bounds: ClassVar[Mapping[str, Bounds]] = {
        "n_iter": AT_LEAST_ONE, "n_chains": AT_LEAST_ONE, "n_threads": AT_LEAST_ONE, "noise_shape": POSITIVE,
    }  # fmt: skip
    param_grid: ClassVar[dict[str, Any]] = {"n_factors": [8, 12], "noise_shape": [2.0, 5.0]}

    @classmethod
    def param_problem(cls, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """Also: ``burn_in`` must leave at least one sweep of ``n_iter`` to keep."""
        if (problem := super().param_problem(params)) is not None:
            return problem
        burn_in, n_iter = params.get("burn_in"), params.get("n_iter")
        if isinstance(burn_in, int) and isinstance(n_iter, int) and burn_in >= n_iter:
            return "burn_in", f"a whole number below n_iter ({n_iter})"
        return None

    def __init__(
        self,
        n_factors: int = 12,
        n_iter: int = 50,
        burn_in: int = 10,
        n_chains: int = 2,
        n_threads: int = 2,
        user_implicit: bool = True,
        item_implicit: bool = True,
        hetero_user: bool = True,
        noise_shape: float = 5.0,
        init_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.n_factors = n_factors
        self.n_iter = n_iter
        self.burn_in = burn_in
        self.n_chains = n_chains
        self.n_threads = n_threads
        self.user_implicit = user_implicit
        self.item_implicit = item_implicit
        self.hetero_user = hetero_user
        self.noise_shape = noise_shape
        self.init_std = init_std
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, history: History) -> None:
        u = data.users.astype(np.int64)
        i = data.items.astype(np.int64)
        r = data.ratings.astype(np.float64)
        n_users, n_items = data.n_users, data.n_items
        uptr, u_items, u_pos = g.group_by(u, i, n_users)
        iptr, i_users, i_pos = g.group_by(i, u, n_items)
        args = (u, i, r, n_users, n_items, uptr, u_items, u_pos, iptr, i_users, i_pos)
        seeds = np.random.SeedSequence(self.seed).spawn(self.n_chains)
        if self.n_threads > 1 and self.n_chains > 1:
            with ThreadPoolExecutor(max_workers=self.n_threads) as pool:
                chains = list(pool.map(lambda s: self._chain(args, s), seeds))
        else:
            chains = [self._chain(args, s) for s in seeds]
        n_samples = max(1, sum(c["n"] for c in chains))
        self.user_samples_ = np.hstack([c["U"] for c in chains]).astype(np.float32)
        self.item_samples_ = np.hstack([c["V"] for c in chains]).astype(np.float32)
        self.implicit_samples_ = np.hstack([c["Y"] for c in chains]).astype(np.float32)
        self.user_bias_ = (sum(c["bu"] for c in chains) / n_samples).astype(np.float32)
        self.item_bias_ = (sum(c["bi"] for c in chains) / n_samples).astype(np.float32)  # mu + c_i
        self.prior_ = np.vstack([c["prior"] for c in chains]).astype(np.float32)  # (S, 2k+1)
        self.user_known_ = np.diff(uptr) > 0
        self.item_known_ = np.diff(iptr) > 0
        self.mu_ = np.float32(r.mean())
        self.range_ = np.array([r.min(), r.max()], dtype=np.float32)

    def _chain(self, args: tuple[Any, ...], seed: np.random.SeedSequence) -> dict[str, Any]:
        """One Gibbs chain; returns its kept samples (stacked along columns) and sums."""
        u, i, r, n_users, n_items, uptr, u_items, u_pos, iptr, i_users, i_pos = args
        rng = np.random.default_rng(seed)
        k, n = self.n_factors, len(r)
        cnt_u = np.diff(uptr).astype(np.float64)
        cnt_i = np.diff(iptr).astype(np.float64)
        known_u, known_i = cnt_u > 0, cnt_i > 0
        norm_u = np.where(known_u, 1.0 / np.sqrt(np.maximum(cnt_u, 1.0)), 0.0)
        norm_i = np.where(known_i, 1.0 / np.sqrt(np.maximum(cnt_i, 1.0)), 0.0)
        mu = float(r.mean())
        b, c = np.zeros(n_users), np.zeros(n_items)
        P = rng.standard_normal((n_users, k)) * self.init_std
        Q = rng.standard_normal((n_items, k)) * self.init_std
        Y, Z = np.zeros((n_items, k)), np.zeros((n_users, k))
        U, V = P.copy(), Q.copy()  # effective factors: explicit + implicit part
        Su, gu = np.zeros((n_users, k * k)), np.zeros((n_users, k))
        Si, gi = np.zeros((n_items, k * k)), np.zeros((n_items, k))
        e = np.empty(n)
        g.residual(u, i, r, mu, b, c, U, V, e)
        s_u = np.ones(n_users)
        keep = max(self.n_iter - self.burn_in, 0)
        out: dict[str, Any] = {
            "U": np.empty((n_users, keep * k)), "V": np.empty((n_items, keep * k)),
            "Y": np.empty((n_items, keep * k)), "bu": np.zeros(n_users), "bi": np.zeros(n_items),
            "prior": np.empty((keep, 2 * k + 1)), "n": keep,
        }  # fmt: skip
        for it in range(self.n_iter):
            e2 = e * e
            alpha = rng.gamma(1.0 + 0.5 * n, 1.0 / (1.0 + 0.5 * float((e2 * s_u[u]).sum())))
            if self.hetero_user:
                ss = np.bincount(u, weights=alpha * e2, minlength=n_users)
                s_u = rng.gamma(self.noise_shape + 0.5 * cnt_u, 1.0 / (self.noise_shape + 0.5 * ss))
            wr = alpha * s_u[u]
            sw = float(wr.sum())
            new_mu = mu + float((wr * e).sum()) / sw + rng.standard_normal() / np.sqrt(sw)
            e -= new_mu - mu
            mu = new_mu
            lam, m = g.sample_hyper(b[known_u, None], rng)
            g.sample_bias(uptr, u_pos, e, wr, b, float(lam[0]), float(m[0]), rng.standard_normal(n_users))
            lam, m = g.sample_hyper(c[known_i, None], rng)
            g.sample_bias(iptr, i_pos, e, wr, c, float(lam[0]), float(m[0]), rng.standard_normal(n_items))
            lam_p, m_p = g.sample_hyper(P[known_u], rng)
            g.sample_factor(
                uptr,
                u_items,
                u_pos,
                e,
                wr,
                V,
                P,
                U,
                lam_p,
                m_p,
                rng.standard_normal((n_users, k)),
                Su,
                gu,
                self.user_implicit,
            )
            if self.user_implicit:
                lam_, m_ = g.sample_hyper(Y[known_i], rng)
                g.sample_implicit(
                    iptr, i_users, norm_u, Su, gu, Y, U, lam_, m_, rng.standard_normal((n_items, k))
                )
                g.residual(u, i, r, mu, b, c, U, V, e)
            lam_, m_ = g.sample_hyper(Q[known_i], rng)
            g.sample_factor(
                iptr,
                i_users,
                i_pos,
                e,
                wr,
                U,
                Q,
                V,
                lam_,
                m_,
                rng.standard_normal((n_items, k)),
                Si,
                gi,
                self.item_implicit,
            )
            if self.item_implicit:
                lam_, m_ = g.sample_hyper(Z[known_u], rng)
                g.sample_implicit(
                    uptr, u_items, norm_i, Si, gi, Z, V, lam_, m_, rng.standard_normal((n_users, k))
                )
                g.residual(u, i, r, mu, b, c, U, V, e)
            if it >= self.burn_in:
                s = it - self.burn_in
                out["U"][:, s * k : (s + 1) * k] = U
                out["V"][:, s * k : (s + 1) * k] = V
                out["Y"][:, s * k : (s + 1) * k] = Y
                out["bu"] += b
                out["bi"] += c + mu
                out["prior"][s] = np.concatenate([lam_p, m_p, [alpha]])
        return out

    # ------------------------------------------------------------------ predict
    @property
    def n_samples(self) -> int:
        return int(self.prior_.shape[0])

    def predict(self, users: npt.ArrayLike, items: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Posterior-mean ratings ``(m,)``, clipped to the training range.

        A member or title unknown at training (index -1 or without ratings)
        falls back to the bias terms of the other side, or the global mean.
        """
        self._require_fit()
        u = np.asarray(users, dtype=np.int64)
        i = np.asarray(items, dtype=np.int64)
        ku = (u >= 0) & (u < len(self.user_known_))
        ku[ku] = self.user_known_[u[ku]]
        ki = (i >= 0) & (i < len(self.item_known_))
        ki[ki] = self.item_known_[i[ki]]
        out = np.full(len(u), self.mu_, dtype=np.float64)
        both = ku & ki
        uu, ii = u[both], i[both]
        dots = np.einsum("ij,ij->i", self.user_samples_[uu], self.item_samples_[ii], dtype=np.float64)
        out[both] = self.user_bias_[uu] + self.item_bias_[ii] + dots / self.n_samples
        only_u = ku & ~ki
        out[only_u] = self.mu_ + self.user_bias_[u[only_u]]
        only_i = ~ku & ki
        out[only_i] = self.item_bias_[i[only_i]]
        return np.clip(out, self.range_[0], self.range_[1]).astype(np.float32)

    def _score(self, history: History, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Predicted ratings of every title ``(rows, n_items)``; fold-in for rows without a member."""
        factors = np.empty((history.n_rows, self.user_samples_.shape[1]), dtype=np.float32)
        bias = np.zeros(history.n_rows, dtype=np.float32)
        known = users >= 0
        factors[known] = self.user_samples_[users[known]]
        bias[known] = self.user_bias_[users[known]]
        for row in np.flatnonzero(~known):
            h = history.rows([row])
            factors[row], bias[row] = self._fold_in(
                h.items.astype(np.int64), h.values.astype(np.float64), rated=history.rated
            )
        scores = factors @ self.item_samples_.T / self.n_samples
        scores += bias[:, None] + self.item_bias_[None, :]
        return np.clip(scores, self.range_[0], self.range_[1])

    def _fold_in(self, items: npt.NDArray[np.int64], ratings: F64, *, rated: bool) -> tuple[F64, float]:
        """A new member's stacked factors ``(S·k,)`` and bias from their ratings, per sample.

        For each kept sample: the implicit term from the titles, then the
        explicit part ``P`` as the posterior mean of a Gaussian with the
        sample's prior and noise precision given the ratings (a ``k × k`` solve).
        Without ratings (plays only) ``P`` is the prior mean.
        """
        k, S = self.n_factors, self.n_samples
        if len(items) == 0:
            return np.zeros(S * k), 0.0
        norm = 1.0 / np.sqrt(len(items))
        implicit = (self.implicit_samples_[items].sum(axis=0) * norm).reshape(S, k).astype(np.float64)
        lam, mean, alpha = self.prior_[:, :k], self.prior_[:, k : 2 * k], self.prior_[:, 2 * k]
        if not rated:
            return (mean + implicit).ravel(), 0.0
        base = self.item_bias_[items].astype(np.float64)
        bias = float((ratings - base).sum() / (len(items) + 5.0))  # shrunk toward 0
        v = (
            self.item_samples_[items].reshape(len(items), S, k).transpose(1, 0, 2).astype(np.float64)
        )  # (S, n, k)
        target = ratings - base - bias - np.einsum("snk,sk->sn", v, implicit)
        prec = alpha[:, None, None] * np.einsum("snk,snl->skl", v, v) + lam[:, :, None] * np.eye(k)
        rhs = alpha[:, None] * np.einsum("snk,sn->sk", v, target) + lam * mean
        p = np.linalg.solve(prec, rhs[:, :, None])[:, :, 0]
        return (p + implicit).ravel(), bias

    # ------------------------------------------------------------------ persist
    _STATE = (
        "user_samples_",
        "item_samples_",
        "implicit_samples_",
        "user_bias_",
        "item_bias_",
        "prior_",
        "user_known_",
        "item_known_",
        "range_",
    )

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        state = {k.rstrip("_"): getattr(self, k) for k in self._STATE}
        state["mu"] = np.asarray([self.mu_])
        return state

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        for k in self._STATE:
            setattr(self, k, state[k.rstrip("_")])
        self.mu_ = np.float32(state["mu"][0])
