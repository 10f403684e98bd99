"""Baseline forecasters scored beside the models: persistence, climatology, and three linear
regressions on anomalies (pooled, per cell, spatial ridge): what a statistician fits in an
afternoon, and what a learned model has to beat.

Arrays are ``(N, L, V, H, W)`` (inits x leads x variables x grid), as in :mod:`.verify`.
"""

from __future__ import annotations

import numpy as np

from wxmodels.data.fields import Fields
from wxmodels.data.lazy import Anomalies

__all__ = [
    "CellLinearBaseline",
    "LinearBaseline",
    "RidgeBaseline",
    "fit_cell_linear",
    "fit_linear",
    "fit_ridge",
]


class LinearBaseline:
    """Linear regression on anomalies, one per variable and lead (pooled over grid points):

    ``x'(t+L)_v = sum_u a_{v,u,L} x'(t)_u + sum_u b_{v,u,L} x'(t-1)_u + c_{v,L}``,

    where ``x'`` is the anomaly from the climatology of its valid time, and the forecast is
    ``clim(t+L) + x'(t+L)``. It captures anomaly persistence, its decay toward climatology
    and the linear coupling between variables: what a model must beat to show it learned more.

    Attributes:
        coef: ``(L, V, 2V + 1)`` regression coefficients.
    """

    def __init__(self, coef: np.ndarray, lead_steps: list[int]):
        self.coef = coef
        self.lead_steps = list(lead_steps)

    def predict(self, fields: Fields, clim_all: np.ndarray, inits: np.ndarray) -> np.ndarray:
        """Forecasts ``(N, L, V, H, W)`` at ``self.lead_steps`` from ``inits``."""
        inits = np.asarray(inits)
        anom = Anomalies(fields.data, clim_all)
        x = np.concatenate([anom[inits], anom[inits - 1]], axis=1)  # (N, 2V, H, W)
        x = np.nan_to_num(x)
        out = np.empty(
            (len(inits), len(self.lead_steps), fields.data.shape[1], *fields.data.shape[2:]),
            np.float32,
        )
        for j, s in enumerate(self.lead_steps):
            pred = (
                np.einsum("vk,nkhw->nvhw", self.coef[j, :, :-1], x)
                + self.coef[j, :, -1][None, :, None, None]
            )
            out[:, j] = clim_all[inits + s] + pred
        out[:, :, :, ~fields.valid] = np.nan
        return out


def init_blocks(inits: np.ndarray, per_init_bytes: float, budget_mb: float = 64.0):
    """``inits`` in time order, in blocks whose features take about ``budget_mb`` (one block
    on small grids: the sums are then those of one product over all of them)."""
    inits = np.sort(np.asarray(inits))
    n = max(1, int(budget_mb * 2**20 / max(per_init_bytes, 1.0)))
    return [inits[k : k + n] for k in range(0, len(inits), n)]


def fit_linear(
    fields: Fields,
    clim_all: np.ndarray,
    inits: np.ndarray,
    lead_steps: list[int],
    ridge: float = 1e-3,
) -> LinearBaseline:
    """Least squares (lightly ridged) on the training ``inits``; the normal equations are
    accumulated init block by init block (bounded memory on large grids)."""
    anom = Anomalies(fields.data, clim_all)
    valid = fields.valid
    nv = fields.data.shape[1]
    k = 2 * nv + 1
    ata = np.zeros((len(lead_steps), nv, k, k))
    atb = np.zeros((len(lead_steps), nv, k))
    count = np.zeros((len(lead_steps), nv))
    for idx in init_blocks(inits, 2 * nv * int(valid.sum()) * 8 * 3):
        x = np.concatenate([anom[idx], anom[idx - 1]], axis=1)[:, :, valid]  # (n, 2V, P)
        xok = np.isfinite(x).all(axis=1)  # (n, P)
        # the design matrix of the rows with finite features, once for every variable and lead
        xs = x.transpose(0, 2, 1)[xok]  # (m, 2V)
        a = np.concatenate([xs, np.ones((len(xs), 1))], axis=1).astype(np.float64)
        ata_all = a.T @ a
        for j, s in enumerate(lead_steps):
            y = anom[idx + s][:, :, valid].transpose(0, 2, 1)[xok]  # (m, V)
            for v in range(nv):
                yok = np.isfinite(y[:, v])
                if yok.all():  # the usual case: every row counts
                    ata[j, v] += ata_all
                    atb[j, v] += a.T @ y[:, v].astype(np.float64)
                    count[j, v] += len(a)
                else:
                    av = a[yok]
                    ata[j, v] += av.T @ av
                    atb[j, v] += av.T @ y[yok, v].astype(np.float64)
                    count[j, v] += len(av)
    coef = np.zeros((len(lead_steps), nv, k))
    pen = np.diag([1.0] * (2 * nv) + [0.0])
    for j in range(len(lead_steps)):
        for v in range(nv):
            coef[j, v] = np.linalg.solve(ata[j, v] + ridge * count[j, v] * pen, atb[j, v])
    return LinearBaseline(coef, lead_steps)


def _anomaly_features(
    fields: Fields, clim_all: np.ndarray, inits: np.ndarray
) -> tuple[np.ndarray, Anomalies]:
    """``(N, 2, V, P)``: the anomalies at ``t`` and ``t - 1`` of every valid cell, NaN as 0,
    and the anomalies themselves (read as indexed)."""
    anom = Anomalies(fields.data, clim_all)
    x = np.stack([anom[inits], anom[inits - 1]], axis=1)[:, :, :, fields.valid]
    return np.nan_to_num(x).astype(np.float64), anom


class CellLinearBaseline:
    """Linear regression on anomalies, one per grid cell, variable and lead: every variable's
    anomaly at ``t`` and ``t - 1`` *at that cell* -> the variable at ``t + L``. Local
    persistence and decay, fitted where they differ (coasts, mountains, the diurnal range).

    Attributes:
        coef: ``(L, V, P, 2V + 1)`` (P: valid cells, in ``fields.valid`` order).
    """

    def __init__(self, coef: np.ndarray, lead_steps: list[int]):
        self.coef = coef
        self.lead_steps = list(lead_steps)

    def predict(self, fields: Fields, clim_all: np.ndarray, inits: np.ndarray) -> np.ndarray:
        inits = np.asarray(inits)
        x, _ = _anomaly_features(fields, clim_all, inits)
        n, _, nv, p = x.shape
        x = np.concatenate([x.reshape(n, 2 * nv, p), np.ones((n, 1, p))], axis=1)  # (N, K, P)
        out = np.full((n, len(self.lead_steps), nv, *fields.valid.shape), np.nan, np.float32)
        for j, s in enumerate(self.lead_steps):
            pred = np.einsum("vpk,nkp->nvp", self.coef[j], x)
            out[:, j][:, :, fields.valid] = clim_all[inits + s][:, :, fields.valid] + pred
        return out


def fit_cell_linear(
    fields: Fields,
    clim_all: np.ndarray,
    inits: np.ndarray,
    lead_steps: list[int],
    ridge: float = 1e-3,
) -> CellLinearBaseline:
    """Least squares per cell (lightly ridged) on the training ``inits``, accumulated init
    block by init block."""
    nv, p = fields.data.shape[1], int(fields.valid.sum())
    k = 2 * nv + 1
    ata = np.zeros((p, k, k))
    aty = np.zeros((len(lead_steps), p, k, nv))
    n = 0
    for idx in init_blocks(inits, (2 * nv + 1) * p * 8 * 3):
        x, anom = _anomaly_features(fields, clim_all, idx)
        a = np.concatenate([x.reshape(len(idx), 2 * nv, p), np.ones((len(idx), 1, p))], axis=1)
        ata += np.einsum("nkp,njp->pkj", a, a)  # (P, K, K)
        for j, s in enumerate(lead_steps):
            y = np.nan_to_num(anom[idx + s][:, :, fields.valid]).astype(np.float64)  # (n, V, P)
            aty[j] += np.einsum("nkp,nvp->pkv", a, y)  # (P, K, V)
        n += len(idx)
    pen = ridge * n * np.diag([1.0] * (2 * nv) + [0.0])
    coef = np.zeros((len(lead_steps), nv, p, k))
    for j in range(len(lead_steps)):
        sol = np.linalg.solve(ata + pen[None], aty[j])  # (P, K, V)
        coef[j] = sol.transpose(2, 0, 1)
    return CellLinearBaseline(coef, lead_steps)


class RidgeBaseline:
    """Spatial ridge regression on anomalies, one per lead: the anomalies of every variable at
    every valid cell at ``t`` and ``t - 1`` -> every variable at every cell at ``t + L``
    (what a statistician fits first on a gridded record: it learns advection and
    teleconnections linearly). Features are scaled by each variable's anomaly std; the ridge
    strength is chosen per lead on the validation inits from a log grid (one SVD per fit, so
    the coefficients are kept in the SVD's basis: ``pred = (x @ basis.T) @ weights``).

    Attributes:
        basis: ``(r, F)`` right singular vectors of the centred, scaled training features;
        weights: per lead ``(r, V * P)``; alpha: the chosen strengths (relative to the mean
        squared singular value).
    """

    def __init__(
        self,
        basis: np.ndarray,
        x_mean: np.ndarray,
        scale: np.ndarray,
        lead_steps: list[int],
    ):
        self.basis, self.x_mean, self.scale = basis, x_mean, scale
        self.lead_steps = list(lead_steps)
        self.weights: list[np.ndarray] = []
        self.y_mean: list[np.ndarray] = []
        self.alpha: list[float] = []

    def _z(self, fields: Fields, clim_all: np.ndarray, inits: np.ndarray) -> np.ndarray:
        """The features of ``inits`` in the SVD basis ``(N, r)``."""
        x, _ = _anomaly_features(fields, clim_all, inits)
        x = (x / self.scale[None, None, :, None]).reshape(len(inits), -1) - self.x_mean
        return x @ self.basis.T

    def predict(self, fields: Fields, clim_all: np.ndarray, inits: np.ndarray) -> np.ndarray:
        inits = np.asarray(inits)
        z = self._z(fields, clim_all, inits)
        nv = fields.data.shape[1]
        out = np.full((len(inits), len(self.lead_steps), nv, *fields.valid.shape), np.nan)
        for j, s in enumerate(self.lead_steps):
            pred = (z @ self.weights[j] + self.y_mean[j]).reshape(len(inits), nv, -1)
            pred = pred * self.scale[None, :, None]
            out[:, j][:, :, fields.valid] = clim_all[inits + s][:, :, fields.valid] + pred
        return out.astype(np.float32)


ALPHAS = tuple(float(a) for a in np.logspace(-4, 2, 13))


def fit_ridge(
    fields: Fields,
    clim_all: np.ndarray,
    inits: np.ndarray,
    val_inits: np.ndarray,
    lead_steps: list[int],
    alphas: tuple[float, ...] = ALPHAS,
) -> RidgeBaseline:
    """Fit on ``inits``, choose each lead's ridge strength on ``val_inits`` (validation MSE
    over every target, in scaled units)."""
    inits, val_inits = np.asarray(inits), np.asarray(val_inits)
    x0, anom = _anomaly_features(fields, clim_all, inits)
    scale = np.sqrt(np.mean(x0[:, 0] ** 2, axis=(0, 2)))
    scale = np.where(scale > 0, scale, 1.0)
    xs = (x0 / scale[None, None, :, None]).reshape(len(inits), -1)
    x_mean = xs.mean(axis=0)
    u, sv, vt = np.linalg.svd(xs - x_mean, full_matrices=False)
    base = float(np.mean(sv**2)) or 1.0
    model = RidgeBaseline(vt, x_mean, scale, lead_steps)
    zv = model._z(fields, clim_all, val_inits)

    def targets(idx: np.ndarray, s: int) -> np.ndarray:
        y = np.nan_to_num(anom[idx + s][:, :, fields.valid]) / scale[None, :, None]
        return y.reshape(len(idx), -1)

    for s in lead_steps:
        y = targets(inits, s)
        y_mean = y.mean(axis=0)
        uty = u.T @ (y - y_mean)  # (r, V*P)
        yv = targets(val_inits, s)
        best: tuple[float, float, np.ndarray] | None = None
        for a in alphas:
            w = (sv / (sv**2 + a * base))[:, None] * uty
            err = float(np.mean((zv @ w + y_mean - yv) ** 2))
            if best is None or err < best[0]:
                best = (err, a, w)
        assert best is not None
        model.weights.append(best[2])
        model.y_mean.append(y_mean)
        model.alpha.append(best[1])
    return model
