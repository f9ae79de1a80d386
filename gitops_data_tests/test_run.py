"""What a failed Dagster run says to the user and to `status`: the error in our words, never
Dagster's internals (`execute_plan: dagster._core.definitions.events.Failure: ...`)."""

from __future__ import annotations

from gitops_data.deployment.core import Deployment
from gitops_data.orchestration.run import InProcessExecutor, run_failure, user_message
from gitops_data.plan import Trigger
from gitops_data_tests.conftest import SMALL_PROJECT


def test_a_failure_raised_by_the_plan_job_reads_as_our_message(make_repo, warehouse, instance):
    repo = make_repo(SMALL_PROJECT)
    ws = Deployment(str(repo.path), warehouse)
    sha = repo.head()
    plan = ws.plan(sha, ws.environment("main"))
    # a plan id that was never stored: the job's op raises dagster's Failure with our text
    execution = InProcessExecutor(ws, instance).execute(plan, "nosuchplan00", Trigger.SYNC)
    assert execution.error is not None
    assert execution.error.startswith("plan nosuchplan00 is not in the catalog"), execution.error
    for internal in ("dagster", "Failure", "execute_plan"):
        assert internal not in execution.error
    # the run-failure alert reads the same words from the event log
    assert run_failure(instance, execution.run_id or "") == execution.error


def test_user_message_keeps_the_class_of_foreign_errors_only():
    assert (
        user_message("Failure", "dagster._core.definitions.events.Failure: plan x is gone\n")
        == "plan x is gone"
    )
    assert user_message("BuildError", "gitops_data.errors.BuildError: model 'a' failed") == "model 'a' failed"
    assert (
        user_message("ConversionException", "_duckdb.ConversionException: bad") == "ConversionException: bad"
    )
    assert user_message("ZeroDivisionError", "ZeroDivisionError: division by zero") == (
        "ZeroDivisionError: division by zero"
    )
