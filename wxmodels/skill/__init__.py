"""Forecast verification (WeatherBench 2 definitions), baselines, scorecards and gates."""
