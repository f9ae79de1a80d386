def model(dbt, session):
    """A dbt Python model (dbt-duckdb's contract): DuckDB relations in, a relation or frame out."""
    dbt.config(materialized="table")
    events = dbt.ref("events")
    accounts = dbt.ref("crm_active").aggregate("count(*) as n").fetchall()[0][0]
    spend = events.filter("amount > 1").aggregate("kind, sum(amount) as spent, count(*) as events")
    return spend.project(f"kind, spent, events, {accounts} as accounts")
