"""A vision-transformer core on a fixed grid, the family most modern forecasters belong to
(Pangu-Weather, FuXi, Stormer, AIFS): patch embedding, pre-norm blocks of (windowed or full)
multi-head self-attention and an MLP, patch recovery.

``(B, cin, H, W) -> (B, cout, H, W)``: the grid is padded (replicate) to a multiple of the patch
size, cut into ``patch x patch`` patches that become tokens (a linear map of each patch's
values), and cropped back at the end. Every weight sits in a ``Linear`` (built by the
:class:`~wxmodels.nets.layers.Builder`, so low-rank factors and pruned heads or MLP widths are
rebuilt from the spec's overrides) and every product is a ``MatMul`` in ONNX: the layers int8
quantization and pruning act on.

Block ``i`` maps tokens to tokens of the same shape (:meth:`TransformerCore.embed`,
:meth:`TransformerCore.step`, :meth:`TransformerCore.readout`), which depth distillation uses
to train a shallower student block by block.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from wxmodels.nets.layers import Builder

__all__ = ["Attention", "Block", "Mlp", "TransformerCore"]

MASKED = -1.0e4  # added to attention logits of padding tokens (finite: exports cleanly)


class Attention(nn.Module):
    """Multi-head self-attention over windows of ``window x window`` tokens (all tokens when
    ``window`` is 0 or covers the token grid). ``heads`` is the number kept (structured pruning
    removes whole heads); every head has ``head_dim`` features."""

    def __init__(
        self,
        fqn: str,
        dim: int,
        heads: int,
        head_dim: int,
        tokens: tuple[int, int],
        window: int,
        b: Builder,
    ):
        super().__init__()
        self.heads = int(b.get(fqn).get("heads", heads))
        self.head_dim = head_dim
        inner = self.heads * head_dim
        self.qkv = b.linear(f"{fqn}.qkv", dim, 3 * inner)
        self.proj = b.linear(f"{fqn}.proj", inner, dim)
        self.scale = head_dim**-0.5
        nh, nw = tokens
        win = window if 0 < window < max(nh, nw) else 0
        self.window = win
        self.tokens = tokens
        if win:
            ph, pw = (-nh) % win, (-nw) % win
            self.pad = (ph, pw)
            real = torch.ones(1, nh, nw)
            real = F.pad(real, (0, pw, 0, ph))
            real = _windows(real.unsqueeze(-1), win).squeeze(-1)  # (nwin, win*win)
            bias = torch.where(real > 0, 0.0, MASKED)[:, None, None, :]
            self.register_buffer("key_bias", bias, persistent=False)
        else:
            self.pad = (0, 0)
            self.key_bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        if self.window:
            nh, nw = self.tokens
            ph, pw = self.pad
            g = x.view(b, nh, nw, d)
            if ph or pw:
                g = F.pad(g, (0, 0, 0, pw, 0, ph))
            x = _windows(g, self.window)  # (b * nwin, win*win, d)
        bw, m, _ = x.shape
        qkv = self.qkv(x).view(bw, m, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if self.key_bias is not None:
            nwin = self.key_bias.shape[0]
            logits = (logits.view(bw // nwin, nwin, self.heads, m, m) + self.key_bias).view(
                bw, self.heads, m, m
            )
        out = torch.matmul(logits.softmax(dim=-1), v)
        out = out.transpose(1, 2).reshape(bw, m, self.heads * self.head_dim)
        out = self.proj(out)
        if self.window:
            nh, nw = self.tokens
            ph, pw = self.pad
            out = _unwindows(out, self.window, b, nh + ph, nw + pw)[:, :nh, :nw]
            out = out.reshape(b, n, d)
        return out


def _windows(g: torch.Tensor, win: int) -> torch.Tensor:
    """``(B, H, W, D) -> (B * H/win * W/win, win*win, D)``."""
    b, h, w, d = g.shape
    g = g.view(b, h // win, win, w // win, win, d).permute(0, 1, 3, 2, 4, 5)
    return g.reshape(b * (h // win) * (w // win), win * win, d)


def _unwindows(x: torch.Tensor, win: int, b: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`_windows`: ``-> (B, H, W, D)``."""
    d = x.shape[-1]
    x = x.view(b, h // win, w // win, win, win, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, d)


class Mlp(nn.Module):
    """``fc2(act(fc1(x)))`` with an inner width ``mid`` (structured pruning shrinks it)."""

    def __init__(self, fqn: str, dim: int, mid: int, b: Builder):
        super().__init__()
        mid = int(b.get(fqn).get("mid", mid))
        self.fc1 = b.linear(f"{fqn}.fc1", dim, mid)
        self.act = b.act()
        self.drop = nn.Dropout(b.dropout) if b.dropout > 0 else nn.Identity()
        self.fc2 = b.linear(f"{fqn}.fc2", mid, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        fqn: str,
        dim: int,
        heads: int,
        mlp: int,
        tokens: tuple[int, int],
        window: int,
        b: Builder,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(f"{fqn}.attn", dim, heads, dim // heads, tokens, window, b)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(f"{fqn}.mlp", dim, mlp, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerCore(nn.Module):
    """Patch embedding, ``depth`` blocks of width ``width`` with ``heads`` heads, patch recovery.

    Args:
        patch: patch size in grid cells (tokens = (H/patch) x (W/patch), rounded up).
        window: attention window in tokens (0: full attention over all tokens).
        mlp_ratio: MLP inner width relative to ``width``.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        grid: tuple[int, int],
        width: int,
        depth: int,
        heads: int,
        patch: int,
        window: int,
        mlp_ratio: float,
        b: Builder,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"transformer width {width} is not a multiple of heads {heads}")
        h, w = grid
        self.grid, self.patch, self.cout = grid, patch, cout
        self.pad_hw = ((-h) % patch, (-w) % patch)
        nh, nw = (h + self.pad_hw[0]) // patch, (w + self.pad_hw[1]) // patch
        self.tokens = (nh, nw)
        self.embed_proj = b.linear("embed_proj", cin * patch * patch, width)
        self.pos = nn.Parameter(torch.randn(1, nh * nw, width) * 0.02)
        mid = max(1, round(width * mlp_ratio))
        self.blocks = nn.ModuleList(
            [Block(f"blocks.{i}", width, heads, mid, (nh, nw), window, b) for i in range(depth)]
        )
        self.norm = nn.LayerNorm(width)
        self.head = b.linear("head", width, cout * patch * patch)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Grid ``(B, cin, H, W)`` to tokens ``(B, N, width)``."""
        ph, pw = self.pad_hw
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        b, c = x.shape[:2]
        p, (nh, nw) = self.patch, self.tokens
        x = x.view(b, c, nh, p, nw, p).permute(0, 2, 4, 1, 3, 5).reshape(b, nh * nw, c * p * p)
        return self.embed_proj(x) + self.pos

    def step(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Block ``i``: tokens to tokens."""
        return self.blocks[i](x)

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens back to the grid ``(B, cout, H, W)``."""
        b = x.shape[0]
        p, (nh, nw) = self.patch, self.tokens
        x = self.head(self.norm(x)).view(b, nh, nw, self.cout, p, p)
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(b, self.cout, nh * p, nw * p)
        h, w = self.grid
        return x[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for i in range(len(self.blocks)):
            x = self.step(i, x)
        return self.readout(x)
