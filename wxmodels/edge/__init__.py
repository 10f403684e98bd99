"""The edge runtime: pull a version from a registry, verify it, forecast, write, with nothing
but NumPy and onnxruntime installed (``pip install wxcompress[edge]``; command ``wxc-edge``).

No torch, Prefect, Dask, xarray, pandas, fsspec or zarr is imported here (a test runs this
package in a virtual environment that has only NumPy and onnxruntime). NetCDF output needs the
``netCDF4`` package, NetCDF or Zarr input xarray; both are optional and asked for by name when
missing.

- :func:`~wxmodels.edge.pull.pull`: a version from a local directory, ``file://`` or
  ``http(s)://`` registry, every file checked against the manifest's sha256 and size and the
  manifest against its content id, placed atomically.
- :class:`~wxmodels.edge.model.EdgeModel`: the pulled model in one onnxruntime session set up
  for batch 1 (one intra-op thread, no spinning, full graph optimisation).
- :mod:`~wxmodels.edge.fields`: analyses in, forecasts out (``.npz``, and ``.nc``).
"""

from wxmodels.edge.model import EdgeModel
from wxmodels.edge.pull import pull

__all__ = ["EdgeModel", "pull"]
