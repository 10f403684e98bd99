"""The deployable form of a compressed model: weights stored the way that really shrinks them.

A dense ONNX file stores every weight as a full float, so sparsity (pruning) and weight
sharing (clustering) do not make it smaller. A ``.wxpack`` stores each large initializer in
the smallest of three encodings, then entropy-codes the lot (LZMA), after Deep Compression
(prune, share, Huffman):

* ``codebook``: at most 256 distinct values -> ``b``-bit indices (bit-packed) + the values;
* ``sparse``: a bit mask of the non-zeros + their values;
* ``raw``: the values as they are.

Layout (a zip archive, LZMA members): ``graph.onnx`` (the model with those initializers
emptied), ``manifest.json`` (format, the encodings, the sha256 of the original ONNX bytes) and
one payload per tensor. :func:`unpack_onnx` rebuilds the ONNX bytes exactly and checks their
sha256, so a damaged or tampered pack is refused rather than run.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["PackError", "load_bytes", "pack_onnx", "unpack_onnx"]

FORMAT = "wxpack/1"
MIN_ELEMENTS = 64  # smaller initializers stay in the graph


class PackError(ValueError):
    """A pack that cannot be read back to the model it was made from."""


def _bitpack(idx: np.ndarray, bits: int) -> bytes:
    planes = np.unpackbits(idx.astype(np.uint8)[:, None], axis=1)[:, 8 - bits :]
    return np.packbits(planes.reshape(-1)).tobytes()


def _bitunpack(data: bytes, bits: int, n: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, np.uint8))[: n * bits].reshape(n, bits)
    full = np.zeros((n, 8), np.uint8)
    full[:, 8 - bits :] = planes
    return np.packbits(full, axis=1).reshape(n)


def _encode(a: np.ndarray) -> tuple[dict, bytes]:
    # work on the bit patterns, so that -0.0 and NaN payloads survive exactly
    flat = np.ascontiguousarray(a).reshape(-1)
    dtype = flat.dtype
    if dtype.kind in "fiu" and dtype.itemsize in (1, 2, 4, 8):
        flat = flat.view(f"u{dtype.itemsize}")
    n, item = flat.size, flat.dtype.itemsize
    raw = n * item
    best: tuple[int, str] = (raw, "raw")
    values: np.ndarray = np.empty(0)
    idx: np.ndarray = np.empty(0, np.int64)
    if flat.dtype.kind in "fiu":
        values, idx = np.unique(flat, return_inverse=True)
        if len(values) <= 256:
            bits = max(1, math.ceil(math.log2(max(len(values), 2))))
            best = min(best, (len(values) * item + math.ceil(n * bits / 8), "codebook"))
        nnz = int(np.count_nonzero(flat))
        best = min(best, (math.ceil(n / 8) + nnz * item, "sparse"))
    kind = best[1]
    meta: dict[str, Any] = {"encoding": kind, "dtype": dtype.str, "shape": list(a.shape)}
    if kind == "codebook":
        bits = max(1, math.ceil(math.log2(max(len(values), 2))))
        meta.update(bits=bits, k=len(values))
        return meta, values.tobytes() + _bitpack(idx.reshape(-1), bits)
    if kind == "sparse":
        mask = flat != 0
        meta.update(nnz=int(mask.sum()))
        return meta, np.packbits(mask).tobytes() + flat[mask].tobytes()
    return meta, flat.tobytes()


def _decode(meta: dict, data: bytes) -> np.ndarray:
    dtype = np.dtype(meta["dtype"])
    n = int(np.prod(meta["shape"], dtype=np.int64))
    if meta["encoding"] == "codebook":
        k, bits = meta["k"], meta["bits"]
        values = np.frombuffer(data[: k * dtype.itemsize], dtype)
        out = values[_bitunpack(data[k * dtype.itemsize :], bits, n)]
    elif meta["encoding"] == "sparse":
        mbytes = math.ceil(n / 8)
        mask = np.unpackbits(np.frombuffer(data[:mbytes], np.uint8))[:n].astype(bool)
        out = np.zeros(n, dtype)
        out[mask] = np.frombuffer(data[mbytes:], dtype, count=meta["nnz"])
    elif meta["encoding"] == "raw":
        out = np.frombuffer(data, dtype, count=n)
    else:
        raise PackError(f"unknown encoding {meta['encoding']!r}")
    return out.reshape(meta["shape"])


def pack_onnx(src: str | Path, dst: str | Path) -> dict:
    """Write the pack of ``src`` to ``dst``; returns ``{bytes, onnx_bytes, encodings}``."""
    raw = Path(src).read_bytes()
    model = onnx.load_from_string(raw)
    tensors, payloads = {}, {}
    for i, init in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(init)
        if (
            a.size < MIN_ELEMENTS
            or init.data_location == onnx.TensorProto.EXTERNAL
            or not init.HasField("raw_data")  # typed fields (e.g. int8 in int32_data) stay
        ):
            continue
        meta, data = _encode(a)
        key = f"t{i}"
        tensors[init.name] = {**meta, "payload": key}
        payloads[key] = data
        init.ClearField("raw_data")
    manifest = {
        "format": FORMAT,
        "onnx_sha256": hashlib.sha256(raw).hexdigest(),
        "onnx_bytes": len(raw),
        "tensors": tensors,
    }
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as z:

        def put(name: str, data: bytes | str) -> None:
            # a fixed timestamp: the same model always packs to the same bytes
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_LZMA)

        put("manifest.json", json.dumps(manifest, sort_keys=True))
        put("graph.onnx", model.SerializeToString())
        for key, data in payloads.items():
            put(key, data)
    tmp.replace(dst)
    counts: dict[str, int] = {}
    for t in tensors.values():
        counts[t["encoding"]] = counts.get(t["encoding"], 0) + 1
    return {"bytes": dst.stat().st_size, "onnx_bytes": len(raw), "encodings": counts}


def unpack_onnx(path: str | Path) -> bytes:
    """The original ONNX bytes of a pack, checked against the sha256 recorded when packing.

    Raises:
        PackError: not a pack, a damaged member, or bytes that differ from the original.
    """
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
            if manifest.get("format") != FORMAT:
                raise PackError(f"{path}: not a {FORMAT} pack")
            model = onnx.load_from_string(z.read("graph.onnx"))
            by_name = {init.name: init for init in model.graph.initializer}
            for name, meta in manifest["tensors"].items():
                a = _decode(meta, z.read(meta["payload"]))
                # only raw_data was cleared at packing: every other field (data_location set
                # to its default, say) is still there, so the bytes come back exactly
                by_name[name].raw_data = np.ascontiguousarray(a).tobytes()
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        if isinstance(e, PackError):
            raise
        raise PackError(f"{path}: damaged pack ({type(e).__name__}: {e})") from None
    # initializers rebuilt in place keep the graph's order; the bytes must be the original's
    out = model.SerializeToString()
    if hashlib.sha256(out).hexdigest() != manifest["onnx_sha256"]:
        raise PackError(f"{path}: unpacked model differs from the one packed (sha256 mismatch)")
    return out


def load_bytes(path: str | Path) -> bytes:
    """ONNX bytes of an ``.onnx`` file or a ``.wxpack``."""
    p = Path(path)
    return unpack_onnx(p) if p.suffix == ".wxpack" else p.read_bytes()
