"""A tiny teacher of each family (conv, transformer) and the compression context shared by
the method tests: every method test runs on both."""

import numpy as np
import pytest
import torch

from tests.factories import make_fields
from wxmodels.compress.common import CompressContext
from wxmodels.config.model import TrainConfig
from wxmodels.data.fields import Split, compute_stats
from wxmodels.nets import Forecaster, ForecasterSpec


@pytest.fixture(scope="module")
def fields():
    return make_fields(nt=160, nlat=8, nlon=12)


NETS = {
    "unet": {"arch": "unet", "width": 8, "depth": 1, "history": 2},
    "transformer": {
        "arch": "transformer",
        "width": 32,
        "depth": 4,
        "heads": 4,
        "patch": 2,
        "mlp_ratio": 1.0,
        "history": 2,
    },
}


@pytest.fixture(params=sorted(NETS))
def family(request):
    return request.param


@pytest.fixture
def teacher(fields, family):
    torch.manual_seed(0)
    stats = compute_stats(fields, (0, 100))
    spec = ForecasterSpec(
        net=NETS[family],
        variables=fields.variables,
        lat=fields.lat.tolist(),
        lon=fields.lon.tolist(),
        step_hours=1.0,
        **stats,
    )
    return Forecaster(spec, valid=fields.valid).eval()


@pytest.fixture
def ctx(fields, teacher):
    split = Split(train=(0, 100), val=(110, 135), test=(140, 160))
    return CompressContext(
        teacher=teacher,
        fields=fields,
        split=split,
        train=TrainConfig(batch_size=8, samples_per_epoch=32, lr=1e-3),
        seed=1,
        max_minutes=0.2,
    )


@pytest.fixture
def probe(fields):
    idx = np.array([20, 40, 60])
    state = np.stack([fields.data[i - 1 : i + 1] for i in idx]).astype(np.float32)
    return state, fields.hours[idx].astype(np.float32)
