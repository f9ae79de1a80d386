"""Dagster's compute logs as the repo's dagster.yaml sets them up (orchestration/compute_logs.py):
what a step writes (Python, the descriptor, child processes) reaches both the UI's files and the
console, in order, and nothing a step leaves behind can hold up the run. Each case runs in its own
process, whose stdout and stderr are real descriptors (pytest's capture would stand in for them)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

from gitops_data.orchestration.compute_logs import tee_stream_to_file

STEP = textwrap.dedent("""
    import os, subprocess, sys
    import dagster as dg

    @dg.op
    def talk(context) -> None:
        print("from python")
        print("to stderr", file=sys.stderr)
        os.write(1, b"from the descriptor\\n")
        subprocess.run([sys.executable, "-c", "print('from a child')"], check=True)

    @dg.job
    def talking():
        talk()

    with dg.DagsterInstance.get() as inst:
        assert type(inst.compute_log_manager).__module__ == "gitops_data.orchestration.compute_logs"
        run_id = talking.execute_in_process(instance=inst).run_id
        file_key = next(
            e.dagster_event.logs_captured_data.file_key
            for e in inst.all_logs(run_id)
            if e.dagster_event_type == dg.DagsterEventType.LOGS_CAPTURED
        )
        key = inst.compute_log_manager.build_log_key_for_run(run_id, file_key)
        assert inst.compute_log_manager.is_capture_complete(key)
        data = inst.compute_log_manager.get_log_data(key)  # what the UI's stdout/stderr tabs read
        sys.stderr.write("UI OUT<" + data.stdout.decode() + ">UI OUT\\n")
        sys.stderr.write("UI ERR<" + data.stderr.decode() + ">UI ERR\\n")
""")

LEFT_RUNNING = textwrap.dedent("""
    import subprocess, sys, time
    from gitops_data.orchestration import compute_logs

    compute_logs.DRAIN_SECONDS = 0.5
    started = time.monotonic()
    with compute_logs.tee_stream_to_file(sys.stdout, sys.argv[1]):
        subprocess.Popen([sys.executable, "-c", "import time; print('early', flush=True); time.sleep(4)"])
        time.sleep(0.5)
    print(f"step ended after {time.monotonic() - started:.1f} s", file=sys.stderr)
    print("after the step", flush=True)
""")

MANY_LINES = textwrap.dedent("""
    import sys
    from gitops_data.orchestration.compute_logs import tee_stream_to_file

    with tee_stream_to_file(sys.stdout, sys.argv[1]):
        for i in range(int(sys.argv[2])):
            print(f"line {i}")
    print("after")
""")


CRASH = textwrap.dedent("""
    import os, sys
    from gitops_data.orchestration.compute_logs import tee_stream_to_file

    with tee_stream_to_file(sys.stderr, sys.argv[1]):
        print("the last words", file=sys.stderr, flush=True)
        os._exit(3)  # a crash, a SIGKILL, the OOM killer: nothing of the step runs after this
""")

C_WRITE = textwrap.dedent("""
    import ctypes, sys
    from gitops_data.orchestration.compute_logs import tee_stream_to_file

    data = b"x" * 300_000 + b"\\n"
    with tee_stream_to_file(sys.stdout, sys.argv[1]):
        ctypes.PyDLL(None).write(1, data, len(data))  # C code writing, holding the GIL
""")

LEFT_BEHIND = textwrap.dedent("""
    import subprocess, sys
    from gitops_data.orchestration.compute_logs import tee_stream_to_file

    with tee_stream_to_file(sys.stdout, sys.argv[1]):
        subprocess.Popen(["sh", "-c", f"sleep 1; echo late; echo survived > {sys.argv[2]}"])
    # the process ends at once: what the step started goes on writing to the step's file
""")

CLOSED = textwrap.dedent("""
    import os, sys
    from gitops_data.orchestration.compute_logs import tee_stream_to_file

    before = os.readlink("/proc/self/fd/1")
    with tee_stream_to_file(sys.stdout, sys.argv[1]):
        print("inside", flush=True)
        sys.stdout.close()  # a step may close it
    assert os.readlink("/proc/self/fd/1") == before
    os.write(1, b"after the step\\n")
""")


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )


def test_a_steps_output_reaches_the_ui_and_the_console(repo_dagster_home):
    import os

    done = _run(STEP, env={**os.environ, "DAGSTER_HOME": str(repo_dagster_home)})
    ui_out = done.stderr.split("UI OUT<")[1].split(">UI OUT")[0]
    ui_err = done.stderr.split("UI ERR<")[1].split(">UI ERR")[0]
    for text in ("from python", "from the descriptor", "from a child"):
        assert text in ui_out
        assert text in done.stdout  # and on the console, as it was written
    assert "to stderr" in ui_err
    assert "to stderr" in done.stderr.split("UI OUT<")[0]


def test_a_child_left_running_does_not_hold_up_the_step(tmp_path: Path):
    path = tmp_path / "step.out"
    done = _run(LEFT_RUNNING, str(path))
    seconds = float(done.stderr.split("step ended after ")[1].split(" s")[0])
    assert seconds < 2.0  # 0.5 s of step, not the child's 4 s
    assert "early" in path.read_text()
    assert "after the step" not in path.read_text()
    assert done.stdout.splitlines()[0] == "early" and "after the step" in done.stdout


def test_everything_written_arrives_whole_and_in_order(tmp_path: Path):
    for lines in (1, 50000):
        path = tmp_path / f"step{lines}.out"
        done = _run(MANY_LINES, str(path), str(lines))
        expected = "".join(f"line {i}\n" for i in range(lines))
        assert path.read_text() == expected
        assert done.stdout == expected + "after\n"


def test_a_crash_loses_nothing_the_step_wrote(tmp_path: Path):
    path = tmp_path / "step.err"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], capture_output=True, timeout=60)
    assert done.returncode == 3
    assert path.read_text() == "the last words\n"


def test_a_large_write_from_c_code_holding_the_gil_never_waits(tmp_path: Path):
    path = tmp_path / "step.out"
    done = subprocess.run([sys.executable, "-c", C_WRITE, str(path)], capture_output=True, timeout=60)
    assert done.returncode == 0
    assert path.stat().st_size == 300_001 and len(done.stdout) == 300_001


def test_what_a_step_leaves_running_outlives_the_run_and_keeps_writing(tmp_path: Path):
    import time

    path, flag = tmp_path / "step.out", tmp_path / "survived"
    _run(LEFT_BEHIND, str(path), str(flag))
    deadline = time.monotonic() + 15
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flag.exists(), "the step's child was killed (a broken pipe?)"
    assert "late" in path.read_text()


def test_a_step_that_closes_stdout_gets_it_back(tmp_path: Path):
    path = tmp_path / "step.out"
    done = _run(CLOSED, str(path))
    assert path.read_text() == "inside\n"
    assert done.stdout == "inside\nafter the step\n"


def test_a_stream_without_a_descriptor_is_copied_to_the_file_and_the_console(tmp_path: Path, monkeypatch):
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake)  # a test runner's stand-in for the console
    path = tmp_path / "step.out"
    with tee_stream_to_file(sys.stdout, str(path)):
        print("kept")
    assert sys.stdout is fake  # given back
    print("after")
    assert path.read_text() == "kept\n" and fake.getvalue() == "kept\nafter\n"
