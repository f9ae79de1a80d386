"""Dagster: a thin layer over the deployment lifecycle (plan job, assets, checks, sensors, schedules)."""
