"""The Pareto front of the compression matrix and the relative-skill summary."""

import numpy as np
import pytest

from wxmodels.skill.pareto import mean_relative_rmse, pareto_front


def test_front_by_hand():
    pts = {
        "teacherlike": (100.0, 10.0, 1.00),
        "small": (10.0, 5.0, 1.05),
        "tiny_bad": (5.0, 5.0, 1.50),
        "dominated": (20.0, 6.0, 1.06),  # worse than "small" on all three
        "tie": (10.0, 5.0, 1.05),  # equal to "small": neither dominates
        "broken": (1.0, 1.0, np.inf),
    }
    assert pareto_front(pts) == ["teacherlike", "small", "tiny_bad", "tie"]


def test_single_objective_front_is_the_minimum():
    assert pareto_front({"a": (3.0,), "b": (1.0,), "c": (2.0,)}) == ["b"]


def test_mean_relative_rmse():
    sc = {
        "teacher": {"rmse": {"t": {"1": 1.0, "6": 2.0}}},
        "c": {"rmse": {"t": {"1": 1.1, "6": 2.0}}},
        "n": {"rmse": {"t": {"1": None, "6": 2.0}}},
    }
    assert mean_relative_rmse(sc, "c") == pytest.approx(1.05)
    assert mean_relative_rmse(sc, "n") == float("inf")
