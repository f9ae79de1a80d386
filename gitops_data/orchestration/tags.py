"""Run tags that pin what a Dagster run builds."""

COMMIT = "gitops/commit"
REF = "gitops/ref"
ENV = "gitops/env"
SCHEMA = "gitops/schema"
TRIGGER = "gitops/trigger"
PLAN = "gitops/plan"
WAREHOUSE = "gitops/warehouse"  # the warehouse the run builds in (a URL without its password)
OUTCOME = "gitops/outcome"  # set when the run's plan is concluded: published, blocked: <checks>, ...
