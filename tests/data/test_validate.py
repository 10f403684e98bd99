"""Validation: the clear error for each kind of bad input."""

import numpy as np
import pytest

from tests.factories import canonical_dataset
from wxmodels.data.validate import check_times, validate
from wxmodels.errors import DataError


def test_good_data_passes_and_reports_mask():
    ds = canonical_dataset()
    ds["2m_temperature"][:, 0, 0] = np.nan  # a masked (sea) point: NaN at every step
    stats = validate(ds, max_nan_fraction=0.01)
    assert stats["2m_temperature"]["nan_fraction"] == 0
    assert stats["2m_temperature"]["masked_fraction"] == pytest.approx(1 / 48)


def test_nan_only_variable():
    ds = canonical_dataset()
    ds["10m_wind_speed"][:] = np.nan
    with pytest.raises(DataError, match="10m_wind_speed is NaN everywhere"):
        validate(ds, max_nan_fraction=0.05)


def test_too_many_nans_inside_the_domain():
    ds = canonical_dataset()
    ds["2m_temperature"][:10, 1:, :] = np.nan
    with pytest.raises(DataError, match="NaNs inside its domain"):
        validate(ds, max_nan_fraction=0.05)


def test_wrong_unit_is_caught_with_a_hint():
    ds = canonical_dataset()
    ds["2m_temperature"] = ds["2m_temperature"] - 273.15  # degC labelled K
    with pytest.raises(DataError, match="looks like degC"):
        validate(ds, max_nan_fraction=0.05)


def test_duplicate_and_out_of_order_times():
    ds = canonical_dataset(nt=5)
    t = ds.time.values
    with pytest.raises(DataError, match="duplicated"):
        check_times(np.array([t[0], t[1], t[1]]))
    with pytest.raises(DataError, match="out of order"):
        check_times(np.array([t[0], t[2], t[1]]))
