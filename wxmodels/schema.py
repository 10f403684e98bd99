"""The canonical schema: dimension names and the canonical variables with their units.

Every store written by wxcompress uses these names; sources are mapped onto them on ingest
(:mod:`wxmodels.data.canonical`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "LAT",
    "LEAD",
    "LON",
    "TIME",
    "VARIABLES",
    "Variable",
    "get_variable",
]

TIME = "time"
LAT = "lat"
LON = "lon"
LEAD = "lead_time"


@dataclass(frozen=True)
class Variable:
    """A canonical variable.

    Attributes:
        name: canonical name (WeatherBench 2 style).
        units: canonical units (UDUNITS spelling).
        long_name: human-readable description.
        standard_name: CF standard name, where one exists.
        valid_min: smallest physically plausible value (validation rejects below).
        valid_max: largest physically plausible value (validation rejects above).
        nonnegative: whether forecasts are clipped at zero.
        group: forecast-target family (temperature, precipitation, wind, cloud_radiation, ...).
    """

    name: str
    units: str
    long_name: str
    standard_name: str | None
    valid_min: float
    valid_max: float
    nonnegative: bool = False
    group: str = "other"


def _levels(base: str, units: str, long: str, std: str, lo: float, hi: float, group: str):
    return [
        Variable(f"{base}_{lev}hPa", units, f"{long} at {lev} hPa", std, lo, hi, group=group)
        for lev in (250, 500, 700, 850, 925, 1000)
    ]


_VARS: list[Variable] = [
    Variable(
        "2m_temperature",
        "K",
        "2 m air temperature",
        "air_temperature",
        170.0,
        350.0,
        group="temperature",
    ),
    Variable(
        "2m_dewpoint_temperature",
        "K",
        "2 m dewpoint temperature",
        "dew_point_temperature",
        150.0,
        340.0,
        group="humidity",
    ),
    Variable(
        "2m_specific_humidity",
        "kg kg-1",
        "near-surface specific humidity",
        "specific_humidity",
        0.0,
        0.06,
        nonnegative=True,
        group="humidity",
    ),
    Variable(
        "10m_wind_speed",
        "m s-1",
        "10 m wind speed",
        "wind_speed",
        0.0,
        100.0,
        nonnegative=True,
        group="wind",
    ),
    Variable(
        "10m_u_component_of_wind",
        "m s-1",
        "10 m eastward wind",
        "eastward_wind",
        -100.0,
        100.0,
        group="wind",
    ),
    Variable(
        "10m_v_component_of_wind",
        "m s-1",
        "10 m northward wind",
        "northward_wind",
        -100.0,
        100.0,
        group="wind",
    ),
    Variable(
        "total_precipitation_rate",
        "mm h-1",
        "precipitation rate (rain and snow)",
        "lwe_precipitation_rate",
        0.0,
        500.0,
        nonnegative=True,
        group="precipitation",
    ),
    Variable(
        "total_cloud_cover",
        "1",
        "total cloud cover fraction",
        "cloud_area_fraction",
        0.0,
        1.0,
        nonnegative=True,
        group="cloud_radiation",
    ),
    Variable(
        "surface_solar_radiation_downwards",
        "W m-2",
        "surface downwelling shortwave flux",
        "surface_downwelling_shortwave_flux_in_air",
        0.0,
        1500.0,
        nonnegative=True,
        group="cloud_radiation",
    ),
    Variable(
        "surface_thermal_radiation_downwards",
        "W m-2",
        "surface downwelling longwave flux",
        "surface_downwelling_longwave_flux_in_air",
        30.0,
        700.0,
        nonnegative=True,
        group="cloud_radiation",
    ),
    Variable(
        "mean_sea_level_pressure",
        "Pa",
        "mean sea level pressure",
        "air_pressure_at_mean_sea_level",
        85000.0,
        110000.0,
        group="pressure",
    ),
    Variable(
        "surface_pressure",
        "Pa",
        "surface pressure",
        "surface_air_pressure",
        40000.0,
        110000.0,
        group="pressure",
    ),
    Variable(
        "skin_temperature",
        "K",
        "skin (radiative surface) temperature",
        "surface_temperature",
        170.0,
        360.0,
        group="temperature",
    ),
    Variable(
        "sea_surface_temperature",
        "K",
        "sea surface temperature",
        "sea_surface_temperature",
        265.0,
        315.0,
        group="temperature",
    ),
    Variable(
        "total_column_water_vapour",
        "kg m-2",
        "total column water vapour",
        "atmosphere_mass_content_of_water_vapor",
        0.0,
        100.0,
        nonnegative=True,
        group="humidity",
    ),
    Variable(
        "100m_u_component_of_wind",
        "m s-1",
        "100 m eastward wind",
        "eastward_wind",
        -120.0,
        120.0,
        group="wind",
    ),
    Variable(
        "100m_v_component_of_wind",
        "m s-1",
        "100 m northward wind",
        "northward_wind",
        -120.0,
        120.0,
        group="wind",
    ),
    Variable(
        "low_cloud_cover",
        "1",
        "low cloud cover fraction",
        "low_type_cloud_area_fraction",
        0.0,
        1.0,
        nonnegative=True,
        group="cloud_radiation",
    ),
    Variable(
        "boundary_layer_height",
        "m",
        "planetary boundary layer height",
        "atmosphere_boundary_layer_thickness",
        0.0,
        10000.0,
        nonnegative=True,
        group="other",
    ),
    Variable(
        "convective_available_potential_energy",
        "J kg-1",
        "convective available potential energy",
        "atmosphere_convective_available_potential_energy_wrt_surface",
        0.0,
        20000.0,
        nonnegative=True,
        group="other",
    ),
    *_levels("temperature", "K", "air temperature", "air_temperature", 150.0, 350.0, "temperature"),
    *_levels(
        "geopotential", "m2 s-2", "geopotential", "geopotential", -10000.0, 120000.0, "pressure"
    ),
    *_levels(
        "u_component_of_wind", "m s-1", "eastward wind", "eastward_wind", -150.0, 150.0, "wind"
    ),
    *_levels(
        "v_component_of_wind", "m s-1", "northward wind", "northward_wind", -150.0, 150.0, "wind"
    ),
    *_levels(
        "specific_humidity",
        "kg kg-1",
        "specific humidity",
        "specific_humidity",
        0.0,
        0.06,
        "humidity",
    ),
]

VARIABLES: MappingProxyType[str, Variable] = MappingProxyType({v.name: v for v in _VARS})


def get_variable(name: str) -> Variable:
    """Return the canonical variable ``name``; the error lists the known names."""
    try:
        return VARIABLES[name]
    except KeyError:
        raise KeyError(
            f"unknown canonical variable {name!r}; known: {', '.join(sorted(VARIABLES))}"
        ) from None
