"""One module per case. Each has ID, TITLE and `run(ctx) -> list[Row]` (in the parent process); the
measured steps are functions of the same module that the parent runs in child processes."""

from cases import audit, build, cli, incremental, one_change, peer, publish, python_model, scale, storage

ALL = [build, python_model, one_change, audit, publish, storage, scale, peer, incremental, cli]
