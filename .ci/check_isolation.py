"""Usage: check_isolation.py STATE WAREHOUSE [STATE WAREHOUSE ...]

Each quickstart state folder's Dagster home must hold runs, and only runs tagged with its own
warehouse (gitops/warehouse): the DuckDB and the PostgreSQL quickstarts never share a UI."""

import os
import sys

import dagster as dg


def main(args: list[str]) -> int:
    failed = False
    for state, warehouse in zip(args[::2], args[1::2], strict=True):
        os.environ["DAGSTER_HOME"] = os.path.join(state, "dagster_home")
        with dg.DagsterInstance.get() as instance:
            seen = {r.tags.get("gitops/warehouse", "<no warehouse tag>") for r in instance.get_runs()}
        ok = seen == {warehouse}
        failed |= not ok
        print(f"{'ok' if ok else 'FAIL'}: {os.environ['DAGSTER_HOME']}: runs of {sorted(seen)}, expected {warehouse}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
