"""Test driver: evaluate the real Git-ref sensor against a real Dagster instance and execute the
runs it requests in-process, like the daemon would."""

from __future__ import annotations

import dagster as dg

from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.definitions import build_definitions, current_state
from gitops_data.orchestration.run import execute_run_request
from gitops_data_tests.conftest import query


class Driver:
    def __init__(self, ws: Deployment, instance: dg.DagsterInstance):
        self.ws = ws
        self.instance = instance
        self.cursor: str | None = None
        self.runs: list = []

    def definitions(self) -> dg.Definitions:
        """What a (re)load of the code location builds now."""
        pins, notes = current_state(self.ws)
        return build_definitions(self.ws, pins, notes=notes)

    def tick(self):
        """One sensor evaluation; returns (run requests, skip message)."""
        defs = self.definitions()
        sensor = defs.get_sensor_def("git_refs")
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=defs)
        result = sensor.evaluate_tick(ctx)
        self.cursor = result.cursor if result.cursor is not None else ctx.cursor
        return defs, result.run_requests or [], result.skip_message or ""

    def settle(self, max_ticks: int = 6) -> str:
        """Tick and run until the sensor has nothing more to do; returns the last skip message."""
        message = ""
        for _ in range(max_ticks):
            defs, requests, message = self.tick()
            if not requests:
                return message
            for req in requests:
                self.runs.append(execute_run_request(defs, req, self.instance))
        raise AssertionError(f"sensor did not settle: {message}")

    def materialize_from_ui(self, selection: dg.AssetSelection) -> bool:
        """What "Materialize" in the UI does: a run of the selected assets, with no gitops tags."""
        defs = self.definitions()
        result = dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])],
            instance=self.instance,
            resources=dict(defs.resources),
            selection=selection,
            raise_on_error=False,
        )
        return result.success

    def query(self, sql: str):
        return query(self.ws, sql)
