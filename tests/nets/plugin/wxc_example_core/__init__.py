"""An out-of-tree forecaster core, as a user's package would ship one: a token-mixing network
(an MLP-Mixer on the grid's cells) registered in the ``wxcompress.cores`` entry-point group by
its distribution's metadata (``entry_points.txt`` beside this package). Nothing in it imports
the project."""

from __future__ import annotations

import torch
from torch import nn

__version__ = "0.3.1"


class MixerCore(nn.Module):
    """``(B, cin, H, W) -> (B, cout, H, W)``: a 3 x 3 conv stem, ``depth`` blocks that mix
    across cells (a linear map over the flattened grid) and across channels, a 1 x 1 head."""

    def __init__(
        self, cin: int, cout: int, grid: tuple[int, int], width: int, depth: int, kernel: int
    ):
        super().__init__()
        n = grid[0] * grid[1]
        self.stem = nn.Conv2d(cin, width, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "cells": nn.Linear(n, n),
                    "channels": nn.Linear(width, width),
                }
            )
            for _ in range(depth)
        )
        self.head = nn.Conv2d(width, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = torch.relu(self.stem(x)).flatten(2)  # (B, width, cells)
        for blk in self.blocks:
            x = x + torch.relu(blk["cells"](x))
            x = x + torch.relu(blk["channels"](x.transpose(1, 2))).transpose(1, 2)
        return self.head(x.view(b, -1, h, w))


def build(
    *, cin: int, cout: int, grid: tuple[int, int], width: int, depth: int, kernel: int = 3
) -> nn.Module:
    return MixerCore(cin, cout, tuple(grid), width, depth, kernel)
