"""House rules that keep the layers apart: the import directions are a test.

Floors, lowest first. A module may import from its own floor or a lower one, never a higher one,
and the packages of the library form no cycle; prefect stays out of the library. The checker
reads the source (``ast``), so imports inside functions count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# the library's packages (or top-level modules), by floor
LIBRARY = {
    "wxmodels": 0,  # the package itself (__init__: the version)
    "errors": 0,
    "schema": 0,
    "faults": 0,
    "utils": 0,
    "paths": 0,
    "locks": 0,
    "geometry": 0,
    "record": 0,
    "alloc": 0,  # glibc allocator controls (ctypes)
    "config": 1,
    "cluster": 2,  # Dask workers as SLURM jobs (dask-jobqueue)
    "data": 2,
    "nets": 3,
    "training": 4,
    "export": 4,
    "skill": 5,
    "compress": 6,
    "registry": 6,
    "pipeline": 7,
    "predict": 7,
    "hindcast": 7,
    "replay": 8,
    "edge": 8,  # the edge runtime (NumPy and onnxruntime only; predict for NetCDF input)
}
# the project's top-level packages: library <- infra <- tasks <- flows <- deployments
PROJECT = {"wxmodels": 0, "infra": 1, "tasks": 2, "flows": 3, "deployments": 4}


def _unit(module: str) -> tuple[str, str]:
    """``(top-level package, library unit)`` of a dotted module name."""
    parts = module.split(".")
    unit = parts[1] if parts[0] == "wxmodels" and len(parts) > 1 else parts[0]
    return parts[0], unit


def _imports(source: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def violations(sources: dict[str, str]) -> list[str]:
    """Imports that go up a floor, and cycles between library packages, in ``sources``
    (``{dotted module name: its source}``)."""
    bad = []
    edges: dict[str, set[str]] = {}
    for module, source in sources.items():
        top, unit = _unit(module)
        for line, target in _imports(source):
            ttop, tunit = _unit(target)
            where = f"{module}:{line} imports {target}"
            if top == "wxmodels" and ttop == "prefect":
                bad.append(f"{where}: the library never imports prefect")
            if top in PROJECT and ttop in PROJECT and PROJECT[ttop] > PROJECT[top]:
                bad.append(f"{where}: {top} is below {ttop}")
            if top == ttop == "wxmodels" and unit != tunit:
                if LIBRARY.get(tunit, 99) > LIBRARY.get(unit, 99):
                    bad.append(f"{where}: {unit} (floor {LIBRARY.get(unit)}) is below {tunit}")
                edges.setdefault(unit, set()).add(tunit)
    for a, targets in edges.items():  # cycles of two or more packages
        stack, seen = [(t, [a, t]) for t in targets], set()
        while stack:
            node, path = stack.pop()
            if node == a:
                bad.append(f"import cycle between packages: {' -> '.join(path)}")
                break
            if node in seen:
                continue
            seen.add(node)
            stack += [(t, [*path, t]) for t in edges.get(node, ())]
    return bad


def _project_sources() -> dict[str, str]:
    out = {}
    for top in PROJECT:
        for f in (REPO / top).rglob("*.py"):
            parts = f.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = f.read_text()
    return out


def test_no_import_goes_up_a_floor_and_no_package_cycle():
    assert violations(_project_sources()) == []


def test_the_checker_catches_an_upward_import_and_a_cycle():
    """What the first test would say if someone added an arrow upward."""
    sources = _project_sources()
    sources["wxmodels.data.store"] += "\nfrom wxmodels.pipeline.promote import promote\n"
    sources["infra.stack"] += "\nimport flows.cli\n"
    sources["wxmodels.nets.cores"] += "\nimport prefect\n"
    found = violations(sources)
    assert any("data (floor 2) is below pipeline" in v for v in found), found
    assert any("infra is below flows" in v for v in found), found
    assert any("never imports prefect" in v for v in found), found
    cyc = {"wxmodels.export.x": "import wxmodels.training.y", "wxmodels.training.y": ""}
    cyc["wxmodels.training.y"] = "import wxmodels.export.x"
    assert any("cycle" in v for v in violations(cyc))


def test_every_library_unit_has_a_floor():
    units = {p.stem if p.is_file() else p.name for p in (REPO / "wxmodels").iterdir()}
    units = {u for u in units if not u.startswith(("_", ".")) and u != "py"}
    assert units <= set(LIBRARY), sorted(units - set(LIBRARY))


def test_wxmodels_never_imports_prefect():
    code = (
        "import sys, wxmodels, wxmodels.pipeline.teacher, wxmodels.pipeline.matrix, "
        "wxmodels.pipeline.evaluate, wxmodels.pipeline.promote, wxmodels.predict, "
        "wxmodels.registry, wxmodels.compress; "
        "assert 'prefect' not in sys.modules, [m for m in sys.modules if 'prefect' in m]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_method_is_registered():
    from wxmodels.compress import methods

    assert set(methods) >= {"prune", "structured", "lowrank", "distill", "cluster", "int8"}


def test_the_edge_runtime_loads_nothing_but_numpy_and_onnxruntime():
    """What ``wxc-edge`` loads to pull and forecast (the test in a bare environment proves
    it runs there; this one names what would sneak in)."""
    code = (
        "import sys, wxmodels.edge.cli, wxmodels.edge.fields, wxmodels.edge.pull;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    heavy = {"torch", "xarray", "pandas", "prefect", "dask", "distributed", "fsspec", "zarr",
             "onnx", "scipy", "cryptography", "typer", "pydantic", "netCDF4", "h5py"}  # fmt: skip
    assert heavy.isdisjoint(r.stdout.split()), sorted(heavy & set(r.stdout.split()))
