"""Baseline forecasters scored beside the models: persistence, climatology, linear regression.

Arrays are ``(N, L, V, H, W)`` (inits x leads x variables x grid), as in :mod:`.verify`.
"""

from __future__ import annotations

import numpy as np

from wxmodels.data.fields import Fields

__all__ = ["LinearBaseline", "fit_linear"]


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
        anom = fields.data - clim_all
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


def fit_linear(
    fields: Fields,
    clim_all: np.ndarray,
    inits: np.ndarray,
    lead_steps: list[int],
    ridge: float = 1e-3,
) -> LinearBaseline:
    """Least squares (lightly ridged) on the training ``inits``."""
    inits = np.asarray(inits)
    anom = fields.data - clim_all
    valid = fields.valid
    nv = fields.data.shape[1]
    x = np.concatenate([anom[inits], anom[inits - 1]], axis=1)[:, :, valid]  # (N, 2V, P)
    coef = np.zeros((len(lead_steps), nv, 2 * nv + 1))
    for j, s in enumerate(lead_steps):
        y = anom[inits + s][:, :, valid]  # (N, V, P)
        for v in range(nv):
            ok = np.isfinite(y[:, v]) & np.isfinite(x).all(axis=1)  # (N, P)
            xv = x.transpose(0, 2, 1)[ok]  # (n, 2V)
            a = np.concatenate([xv, np.ones((len(xv), 1))], axis=1).astype(np.float64)
            b = y[:, v][ok].astype(np.float64)
            lhs = a.T @ a + ridge * len(a) * np.diag([1.0] * (2 * nv) + [0.0])
            coef[j, v] = np.linalg.solve(lhs, a.T @ b)
    return LinearBaseline(coef, lead_steps)
