"""House rules that keep the layers apart."""

import subprocess
import sys


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
