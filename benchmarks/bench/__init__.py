"""Benchmark harness: data generation, child-process measurement, reporting."""
