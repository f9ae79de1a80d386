"""Dagster: a thin layer over the pure core — assets, IO manager, asset checks, sensors, schedules."""
