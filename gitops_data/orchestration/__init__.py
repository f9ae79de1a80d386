"""Dagster: a thin layer over the deployment lifecycle: the plan job, assets, asset checks, sensors, schedules."""
