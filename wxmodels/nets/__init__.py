"""Convolutional forecasters: a core network wrapped with normalisation, masks and time inputs."""

from wxmodels.nets.forecaster import Forecaster, ForecasterSpec, load_forecaster, save_forecaster
from wxmodels.nets.rollout import rollout

__all__ = ["Forecaster", "ForecasterSpec", "load_forecaster", "rollout", "save_forecaster"]
