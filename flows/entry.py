"""The ``wxc`` command's entry point: says in one line what to install where the pipeline's
packages are missing (an edge install has ``wxc-edge`` only)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from flows.cli import main as wxc
    except ModuleNotFoundError as e:
        sys.stderr.write(
            f"error: wxc needs the pipeline's packages ({e.name} is not installed): "
            "pip install 'wxcompress[pipeline]'; to forecast on a device, use wxc-edge\n"
        )
        raise SystemExit(2) from None
    wxc()
