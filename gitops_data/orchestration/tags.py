"""Run tags that pin what a Dagster run builds."""

COMMIT = "gitops/commit"
REF = "gitops/ref"
ENV = "gitops/env"
SCHEMA = "gitops/schema"
TRIGGER = "gitops/trigger"
PLAN = "gitops/plan"
