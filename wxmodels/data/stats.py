"""Statistics kept with the store and updated as data is appended: per-variable moments (for
normalisation) and a climatology of the hour of day and the day of year (for ACC and the
climatology baseline).

Both are additive accumulators, so an append costs what the new steps cost, whatever the size of
the archive, and the statistics of any union of appends are exact.

**Climatology.** ``c(t) = X(t) @ beta`` per variable and grid point, with features ``X``: a
constant, ``n_annual`` harmonics of the day of year, ``n_diurnal`` harmonics of the hour of day
(UTC; the local phase is in the per-point coefficients), and the products of the first diurnal
and first annual harmonics (a diurnal cycle whose amplitude follows the seasons). Truncating the
harmonics is the smoothing window: 3 annual harmonics keep features longer than ~4 months
(comparable to WeatherBench 2's 61-day window on daily means), 4 diurnal harmonics keep the
diurnal shape to ~6 h. The fit is least squares through the normal equations
``(X'X) beta = X'y``; ``X'X`` and ``X'y`` are what the store accumulates.

**Fallback for records shorter than a year.** The annual terms are not identifiable from less
than a year, so they are dropped: the climatology is then the mean plus the diurnal harmonics, a
smoothed hour-of-day climatology of the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ClimAccumulator",
    "Climatology",
    "Moments",
    "climatology_features",
    "feature_names",
]

YEAR_H = 365.25 * 24.0


def feature_names(n_annual: int = 3, n_diurnal: int = 4) -> list[str]:
    names = ["const"]
    names += [f"{f}_annual{k}" for k in range(1, n_annual + 1) for f in ("cos", "sin")]
    names += [f"{f}_diurnal{m}" for m in range(1, n_diurnal + 1) for f in ("cos", "sin")]
    if n_annual and n_diurnal:
        names += ["cd1ca1", "cd1sa1", "sd1ca1", "sd1sa1"]
    return names


def climatology_features(hours: np.ndarray, n_annual: int = 3, n_diurnal: int = 4) -> np.ndarray:
    """Features ``(T, P)`` at ``hours`` (hours since 1970-01-01, UTC)."""
    h = np.asarray(hours, dtype=np.float64)
    ya = 2 * np.pi * (h % YEAR_H) / YEAR_H
    da = 2 * np.pi * (h % 24.0) / 24.0
    cols = [np.ones_like(h)]
    for k in range(1, n_annual + 1):
        cols += [np.cos(k * ya), np.sin(k * ya)]
    for m in range(1, n_diurnal + 1):
        cols += [np.cos(m * da), np.sin(m * da)]
    if n_annual and n_diurnal:
        cd, sd, ca, sa = np.cos(da), np.sin(da), np.cos(ya), np.sin(ya)
        cols += [cd * ca, cd * sa, sd * ca, sd * sa]
    return np.stack(cols, axis=1)


@dataclass
class Moments:
    """Shifted sums of values and of one-step tendencies, per variable (valid points only).

    ``shift`` (the first batch's mean) keeps the sums well conditioned for fields like pressure.
    """

    n: list[float] = field(default_factory=list)
    s1: list[float] = field(default_factory=list)
    s2: list[float] = field(default_factory=list)
    shift: list[float] = field(default_factory=list)
    dn: list[float] = field(default_factory=list)
    d1: list[float] = field(default_factory=list)
    d2: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, nv: int) -> Moments:
        z = [0.0] * nv
        return cls(list(z), list(z), list(z), list(z), list(z), list(z), list(z))

    def add(self, data: np.ndarray, prev: np.ndarray | None, valid: np.ndarray) -> None:
        """Add steps ``data (T, V, H, W)``; ``prev (V, H, W)`` is the step before them (for the
        first tendency), ``valid (H, W)`` the domain."""
        x = data[:, :, valid].astype(np.float64)  # (T, V, P)
        for v in range(x.shape[1]):
            xv = x[:, v]
            if self.n[v] == 0 and np.isfinite(xv).any():
                self.shift[v] = float(np.nanmean(xv))
            ok = np.isfinite(xv)
            y = np.where(ok, xv - self.shift[v], 0.0)
            self.n[v] += float(ok.sum())
            self.s1[v] += float(y.sum())
            self.s2[v] += float((y * y).sum())
            seq = xv if prev is None else np.concatenate([prev[v][valid][None], xv])
            d = np.diff(seq, axis=0)
            okd = np.isfinite(d)
            d = np.where(okd, d, 0.0)
            self.dn[v] += float(okd.sum())
            self.d1[v] += float(d.sum())
            self.d2[v] += float((d * d).sum())

    def normalisation(self) -> dict[str, list[float]]:
        """``mean``, ``std`` and ``tendency_std`` per variable."""
        mean, std, tstd = [], [], []
        for v in range(len(self.n)):
            n = max(self.n[v], 1.0)
            m = self.s1[v] / n
            var = max(self.s2[v] / n - m * m, 0.0)
            mean.append(m + self.shift[v])
            std.append(float(np.sqrt(var)) or 1.0)
            dn = max(self.dn[v], 1.0)
            dm = self.d1[v] / dn
            tstd.append(float(np.sqrt(max(self.d2[v] / dn - dm * dm, 0.0))) or std[-1])
        return {"mean": mean, "std": std, "tendency_std": tstd}


class ClimAccumulator:
    """Normal-equation accumulators of the harmonic climatology, per variable.

    Attributes:
        xtx: ``(V, P, P)``; xty: ``(V, P, H, W)``; span: first and last hour added;
        n: steps added per variable.
    """

    def __init__(self, nv: int, shape: tuple[int, int], n_annual: int = 3, n_diurnal: int = 4):
        self.n_annual, self.n_diurnal = n_annual, n_diurnal
        p = len(feature_names(n_annual, n_diurnal))
        self.xtx = np.zeros((nv, p, p))
        self.xty = np.zeros((nv, p, *shape))
        self.n = np.zeros(nv)
        self.span = [np.inf, -np.inf]

    def add(self, data: np.ndarray, hours: np.ndarray, valid: np.ndarray) -> None:
        """Add ``data (T, V, H, W)`` at ``hours (T,)``; a step enters a variable's fit only if
        it is complete over ``valid`` (missing data never biases the climatology)."""
        if len(hours) == 0:
            return
        x = climatology_features(hours, self.n_annual, self.n_diurnal)  # (T, P)
        t, nv = data.shape[:2]
        p = x.shape[1]
        if not np.isnan(data).any():  # the usual case: one product for every variable at once
            y = np.asarray(data, dtype=np.float32).reshape(t, -1)
            xty = x.T.astype(np.float32) @ y  # (P, V*H*W)
            self.xty += np.moveaxis(xty.reshape(p, nv, *data.shape[2:]), 0, 1)
            self.xtx += (x.T @ x)[None]
            self.n += t
        else:
            ok = np.isfinite(data[:, :, valid]).all(axis=2)  # (T, V): complete steps
            for v in range(nv):
                okv = ok[:, v]
                if not okv.any():
                    continue
                xv = x[okv]
                y = np.nan_to_num(data[okv, v]).astype(np.float32)
                self.xtx[v] += xv.T @ xv
                self.xty[v] += np.tensordot(xv.astype(np.float32), y, axes=(0, 0))
                self.n[v] += okv.sum()
        self.span = [min(self.span[0], float(hours[0])), max(self.span[1], float(hours[-1]))]

    def merge(self, other: ClimAccumulator) -> None:
        self.xtx += other.xtx
        self.xty += other.xty
        self.n += other.n
        self.span = [min(self.span[0], other.span[0]), max(self.span[1], other.span[1])]

    def terms(self) -> list[int]:
        """Feature indices used: annual terms only when the record spans a year, and only the
        terms the sampling identifies (daily means stamped at one hour carry no diurnal cycle;
        6-hourly steps no second diurnal sine): a term whose part not explained by the terms
        before it is below 1e-6 of its own size is left out."""
        names = feature_names(self.n_annual, self.n_diurnal)
        full_year = (self.span[1] - self.span[0]) >= YEAR_H - 24
        wanted = [
            i
            for i, n in enumerate(names)
            if full_year or ("annual" not in n and not n.endswith(("ca1", "sa1")))
        ]
        if not self.n.any():
            return wanted
        a = self.xtx[int(np.argmax(self.n))]
        kept: list[int] = []
        for i in wanted:
            if a[i, i] <= 0:
                continue
            if kept:
                k = np.ix_(kept, kept)
                resid = a[i, i] - a[i, kept] @ np.linalg.solve(a[k], a[kept, i])
            else:
                resid = a[i, i]
            if resid > 1e-6 * a[i, i]:
                kept.append(i)
        return kept

    def coefficients(self) -> tuple[np.ndarray, list[int]]:
        """``beta (V, P_used, H, W)`` and the feature indices it refers to."""
        idx = self.terms()
        a = self.xtx[:, idx][:, :, idx]
        b = self.xty[:, idx]
        beta = np.zeros_like(b)
        for v in range(a.shape[0]):
            if self.n[v] == 0:
                beta[v] = np.nan
                continue
            ridge = 1e-8 * np.trace(a[v]) / len(idx) * np.eye(len(idx))
            flat = b[v].reshape(len(idx), -1)
            beta[v] = np.linalg.solve(a[v] + ridge, flat).reshape(b[v].shape)
        return beta, idx

    def evaluate(self, hours: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Climatology at ``hours``: ``(T, V, H, W)`` (NaN outside ``valid``)."""
        beta, idx = self.coefficients()
        x = climatology_features(hours, self.n_annual, self.n_diurnal)[:, idx]
        out = np.einsum("tp,vphw->tvhw", x, beta).astype(np.float32)
        if valid is not None:
            out[:, :, ~valid] = np.nan
        return out

    # serialisation: plain arrays, stored in the store's _wxc/stats group or a NetCDF
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "xtx": self.xtx,
            "xty": self.xty,
            "n": self.n,
            "span": np.asarray(self.span, dtype=np.float64),
            "harmonics": np.array([self.n_annual, self.n_diurnal]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ClimAccumulator:
        na, nd = (int(x) for x in arrays["harmonics"])
        xty = np.asarray(arrays["xty"])
        acc = cls(xty.shape[0], xty.shape[2:], na, nd)
        acc.xtx = np.asarray(arrays["xtx"], dtype=np.float64)
        acc.xty = xty.astype(np.float64)
        acc.n = np.asarray(arrays["n"], dtype=np.float64)
        acc.span = [float(x) for x in arrays["span"]]
        return acc


class Climatology:
    """A fitted climatology: coefficients ``beta (V, P, H, W)`` of the features ``idx``.

    This is what a model that takes the climatology as input ships with (``climatology.nc``):
    a few coefficients per grid point, evaluated at any time with :meth:`evaluate`.
    """

    def __init__(
        self, beta: np.ndarray, idx: list[int], harmonics: tuple[int, int], variables: list[str]
    ):
        self.beta = np.asarray(beta, dtype=np.float32)
        self.idx = [int(i) for i in idx]
        self.harmonics = (int(harmonics[0]), int(harmonics[1]))
        self.variables = list(variables)

    @classmethod
    def from_accumulator(cls, acc: ClimAccumulator, variables: list[str]) -> Climatology:
        beta, idx = acc.coefficients()
        return cls(beta, idx, (acc.n_annual, acc.n_diurnal), variables)

    def evaluate(self, hours: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """``(T, V, H, W)`` float32 at ``hours`` (hours since 1970, UTC)."""
        x = climatology_features(np.ravel(hours), *self.harmonics)[:, self.idx].astype(np.float32)
        out = np.einsum("tp,vphw->tvhw", x, self.beta)
        if valid is not None:
            out[:, :, ~valid] = np.nan
        return out.reshape(*np.shape(hours), *out.shape[1:])

    def window(
        self,
        time_h: np.ndarray,
        history: int,
        step_hours: float,
        valid: np.ndarray | None = None,
    ) -> np.ndarray:
        """What a model with ``history`` states takes as its ``clim`` input: the climatology at
        the history times and the next valid time, ``(B, history + 1, V, H, W)`` float32, for
        initialisations ``time_h`` ``(B,)`` (hours since 1970)."""
        offsets = step_hours * np.arange(-(history - 1), 2, dtype=np.float64)
        hours = np.asarray(time_h, dtype=np.float64)[:, None] + offsets[None]
        return self.evaluate(hours, valid).astype(np.float32)

    def select(self, variables: list[str]) -> Climatology:
        order = [self.variables.index(v) for v in variables]
        return Climatology(self.beta[order], self.idx, self.harmonics, variables)

    def to_netcdf(self, path) -> None:
        import xarray as xr

        xr.Dataset(
            {"beta": (("variable", "feature", "lat", "lon"), self.beta)},
            coords={
                "variable": self.variables,
                "feature": [feature_names(*self.harmonics)[i] for i in self.idx],
            },
            attrs={
                "feature_index": self.idx,
                "harmonics": list(self.harmonics),
                "description": "harmonic climatology: value = features(time) . beta; see "
                "wxmodels.data.stats (hour of day, day of year, UTC)",
            },
        ).to_netcdf(path)

    def to_npz(self, path) -> None:
        """The same coefficients as a NumPy archive: what the edge runtime reads (no NetCDF
        library needed)."""
        np.savez(
            path,
            beta=self.beta,
            feature_index=np.asarray(self.idx, np.int64),
            harmonics=np.asarray(self.harmonics, np.int64),
            variables=np.asarray(self.variables, dtype=str),
        )

    @classmethod
    def from_npz(cls, path) -> Climatology:
        with np.load(path, allow_pickle=False) as z:
            harm = z["harmonics"].tolist()
            return cls(
                z["beta"], z["feature_index"].tolist(), (harm[0], harm[1]), z["variables"].tolist()
            )

    @classmethod
    def from_netcdf(cls, path) -> Climatology:
        import xarray as xr

        with xr.open_dataset(path) as ds:
            idx = np.atleast_1d(ds.attrs["feature_index"]).tolist()
            harm = np.atleast_1d(ds.attrs["harmonics"]).tolist()
            return cls(
                ds["beta"].values, idx, (harm[0], harm[1]), [str(v) for v in ds["variable"].values]
            )
