"""``runtime.slurm``: validation, and every field reaching the worker job (the fast twin of
``tests/integration/test_slurm.py``, which runs the jobs on a real SLURM)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wxmodels.config import load_config
from wxmodels.config.runtime import RuntimeConfig, SlurmConfig
from wxmodels.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_run_locally():
    rt = RuntimeConfig()
    assert rt.cluster == "local" and rt.slurm == SlurmConfig()
    assert rt.slurm.n_workers == 2


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("walltime", "2h", "not a SLURM time"),
        ("walltime", "1:2:3:4", "not a SLURM time"),
        ("memory", "4", "with its unit"),
        ("memory", "lots", "with its unit"),
        ("job_extra_directives", ["#SBATCH --exclusive"], "without '#SBATCH'"),
        ("job_extra_directives", ["--exclusive\n--qos=x"], "one sbatch option per entry"),
        ("job_script_prologue", ["module load a\nmodule load b"], "one shell line"),
        ("partition", "a b", "pattern"),
        ("cores", 0, "greater than or equal to 1"),
        ("jobs", 0, "greater than or equal to 1"),
        ("wait_timeout_s", 0, "greater than 0"),
        ("queue", "debug", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_are_refused(field, value, match):
    with pytest.raises(ValidationError, match=match):
        SlurmConfig.model_validate({field: value})


def test_more_workers_than_cores_is_refused():
    with pytest.raises(ValidationError, match=r"processes \(4\) exceeds cores \(2\)"):
        SlurmConfig(cores=2, processes=4)


@pytest.mark.parametrize("walltime", ["30", "30:00", "02:00:00", "1-00", "1-12:00", "2-00:00:00"])
def test_slurm_time_formats(walltime):
    assert SlurmConfig(walltime=walltime).walltime == walltime


def test_the_cluster_kind_is_checked():
    with pytest.raises(ValidationError, match="'local' or 'slurm'"):
        RuntimeConfig.model_validate({"cluster": "pbs"})


def test_the_example_config_validates_and_overrides_reach_it():
    cfg = load_config(
        REPO / "configs/slurm-example.yaml",
        ["runtime.slurm.partition=compute", "runtime.slurm.account=proj42"],
    )
    s = cfg.runtime.slurm
    assert cfg.runtime.cluster == "slurm"
    assert (s.partition, s.account, s.n_workers) == ("compute", "proj42", 8)
    with pytest.raises(ConfigError, match=r"runtime\.slurm\.walltime"):
        load_config(REPO / "configs/slurm-example.yaml", ["runtime.slurm.walltime=soon"])


def test_log_directory_expands_variables(monkeypatch):
    monkeypatch.setenv("WXC_SHARED", "/gpfs/proj")
    assert SlurmConfig(log_directory="${WXC_SHARED}/logs").log_directory == "/gpfs/proj/logs"


def _script(**slurm) -> str:
    """The job script dask-jobqueue writes for ``runtime.slurm`` (no scheduler started)."""
    from dask_jobqueue.slurm import SLURMJob

    from wxmodels.cluster import slurm_kwargs

    kw = slurm_kwargs(RuntimeConfig(cluster="slurm", slurm=slurm))
    kw.pop("scheduler_options")
    return SLURMJob(scheduler="tcp://10.0.0.1:8786", name="w", **kw).job_script()


def test_every_field_reaches_the_job_script():
    base = _script()
    assert "--no-dashboard" in base and "--dashboard-address 127.0.0.1:0" in base
    assert "DASK_INTERNAL_INHERIT_CONFIG=" in base  # the workers' pre-spawn environment
    changes = {
        "partition": ("compute", "#SBATCH -p compute"),
        "account": ("proj42", "#SBATCH -A proj42"),
        "walltime": ("02:30:00", "#SBATCH -t 02:30:00"),
        "cores": (8, "#SBATCH --cpus-per-task=8"),
        "memory": ("32GiB", "#SBATCH --mem=32G"),
        "job_name": ("matrix", "#SBATCH -J matrix"),
        "job_extra_directives": (["--exclusive", "--qos=long"], "#SBATCH --qos=long"),
        "job_script_prologue": (["module load python/3.11"], "\nmodule load python/3.11\n"),
        "interface": ("ib0", "--interface ib0"),
        "local_directory": ("$TMPDIR", "--local-directory $TMPDIR"),
        "log_directory": ("/gpfs/logs", "#SBATCH -e /gpfs/logs/wxc-worker-%J.err"),
        "python": ("/sw/venv/bin/python", "/sw/venv/bin/python -m distributed.cli.dask_worker"),
        "worker_extra_args": (["--lifetime", "55m"], "--lifetime 55m"),
    }
    for field, (value, expected) in changes.items():
        assert expected not in base, field
        assert expected in _script(**{field: value}), field
    per_core = _script(cores=4, processes=4)
    assert "--nworkers 4" in per_core and "--nthreads 1" in per_core
    per_node = _script(cores=4, processes=1)
    assert "--nthreads 4" in per_node and "--nworkers" not in per_node


def test_the_workers_keep_glibc_thresholds_and_get_the_exports():
    import dask.config

    from wxmodels.cluster import slurm_kwargs

    rt = RuntimeConfig(cluster="slurm", malloc_trim_threshold=131072)
    kw = slurm_kwargs(rt, exports={"PREFECT_API_URL": "http://h:4200/api"})
    lines = kw["job_script_prologue"]
    assert lines[0] == "export PREFECT_API_URL=http://h:4200/api"
    inherit = next(ln for ln in lines if ln.startswith("export DASK_INTERNAL_INHERIT_CONFIG="))
    conf = dask.config.deserialize(inherit.split("=", 1)[1])
    assert conf["distributed"]["nanny"]["pre-spawn-environ"] == {"MALLOC_TRIM_THRESHOLD_": 131072}
    assert conf["distributed"]["worker"]["profile"]["enabled"] is False  # runtime.worker_profile
    assert kw["scheduler_options"] == {"dashboard_address": "127.0.0.1:0"}


def test_a_slurm_runtime_is_not_quietly_a_local_cluster(monkeypatch):
    from flows.runners import dask_runner
    from wxmodels.errors import WxcError

    monkeypatch.delenv("WXC_DASK_ADDRESS", raising=False)

    with pytest.raises(WxcError, match="run_cluster"):
        dask_runner(RuntimeConfig(cluster="slurm"))
    # an address wins over the cluster kind
    assert dask_runner(RuntimeConfig(cluster="slurm"), "tcp://127.0.0.1:1").address
