"""wxcompress library: data, forecasters, compression, skill, export and the model registry.

This package never imports prefect: orchestration lives in ``tasks/`` and ``flows/``.
"""

from wxmodels.errors import WxcError

__all__ = ["WxcError", "__version__"]
__version__ = "0.1.0"
