"""The forecaster: signature, masks, physical bounds, save/load, rebuild from spec."""

import numpy as np
import pytest
import torch

from tests.factories import make_fields, net_spec
from wxmodels.nets import Forecaster, load_forecaster, rollout, save_forecaster
from wxmodels.nets.layers import DomainPad


@pytest.mark.parametrize("arch", ["unet", "resnet"])
def test_shapes_mask_and_rollout(arch):
    f = make_fields(nlat=7, nlon=10)  # odd sizes exercise the U-Net padding
    m = Forecaster(net_spec(f, arch=arch), valid=f.valid).eval()
    state = torch.from_numpy(f.data[:4].reshape(2, 2, 2, 7, 10))
    tm = torch.tensor([f.hours[1], f.hours[3]], dtype=torch.float32)
    out = m(state, tm)
    assert out.shape == (2, 2, 7, 10)
    assert torch.isnan(out[:, :, ~torch.from_numpy(f.valid)]).all()
    assert torch.isfinite(out[:, :, torch.from_numpy(f.valid)]).all()
    r = rollout(m, state, tm, 3, 1.0)
    assert r.shape == (2, 3, 2, 7, 10)
    torch.testing.assert_close(r[:, 0], out, equal_nan=True)


def test_nonnegative_variables_are_clipped():
    f = make_fields(nv=1)
    spec = net_spec(f)
    spec.variables = ["total_precipitation_rate"]
    spec.mean, spec.std, spec.tendency_std = [0.0], [1.0], [100.0]
    m = Forecaster(spec, valid=f.valid)
    with torch.no_grad():
        m.core.head.conv.bias.fill_(-10.0)
    out = m(torch.zeros(1, 2, 1, 8, 12), torch.zeros(1))
    assert float(out[0, 0][torch.from_numpy(f.valid)].min()) == 0.0


def test_save_load_round_trip(tmp_path):
    f = make_fields()
    m = Forecaster(net_spec(f, activation="silu"), valid=f.valid).eval()
    save_forecaster(m, tmp_path)
    m2 = load_forecaster(tmp_path)
    x = torch.from_numpy(f.data[:2][None])
    t = torch.tensor([f.hours[1]], dtype=torch.float32)
    torch.testing.assert_close(m(x, t), m2(x, t), equal_nan=True)
    assert (tmp_path / "model.safetensors").exists()


def test_time_features_change_the_output():
    f = make_fields()
    torch.manual_seed(0)
    m = Forecaster(net_spec(f), valid=f.valid).eval()
    x = torch.from_numpy(f.data[:2][None])
    a = m(x, torch.tensor([0.0]))
    b = m(x, torch.tensor([6.0]))
    assert float((a - b)[:, :, 3:, 3:].abs().max()) > 1e-4
    off = Forecaster(net_spec(f, time_features=False), valid=f.valid).eval()
    torch.testing.assert_close(
        off(x, torch.tensor([0.0])), off(x, torch.tensor([6.0])), equal_nan=True
    )


def test_periodic_padding_wraps_longitude():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    p = DomainPad(1, "periodic")(x)
    assert p.shape == (1, 1, 5, 6)
    assert p[0, 0, 1, 0] == x[0, 0, 0, -1] and p[0, 0, 1, -1] == x[0, 0, 0, 0]
    spec_lon = np.arange(0, 360, 90.0)
    f = make_fields(nlon=4, masked=False)
    s = net_spec(f)
    s.lon = spec_lon.tolist()
    assert s.padding == "periodic"
    assert net_spec(f).padding == "reflect"


def test_unknown_override_is_refused():
    f = make_fields()
    s = net_spec(f)
    s.overrides = {"enc.9.conv1": {"rank": 2}}
    with pytest.raises(ValueError, match="unknown layers"):
        Forecaster(s, valid=f.valid)


def test_macs_by_hand_for_one_conv():
    from torch import nn

    from wxmodels.nets.macs import count_macs

    f = make_fields(nt=20)
    m = Forecaster(net_spec(f, linear_skip=True), valid=f.valid).eval()
    h, w = m.spec.grid
    # the linear path is a 1 x 1 conv at full resolution: cin x V MACs per point
    skip = m.skip
    assert isinstance(skip, nn.Conv2d)
    with torch.no_grad():
        skip.weight.fill_(1.0)  # it starts at zero
    full = count_macs(m)
    with torch.no_grad():
        skip.weight.zero_()
    after = count_macs(m)
    assert after["dense"] == full["dense"]
    assert full["nonzero"] - after["nonzero"] == skip.in_channels * skip.out_channels * h * w
    assert full["dense"] > 0 and full["nonzero"] <= full["dense"]
