"""The TPC-H case's project, data and dbt side (see cases/tpch.py)."""
