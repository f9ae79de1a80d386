# The quickstart's state, one folder per warehouse: source it (`source examples/env.sh`) to point
# the CLI, the walkthrough and `dagster dev` at the data repo, warehouse and Dagster home that the
# quickstart made for GITOPS_DATA_WAREHOUSE (default: the embedded DuckDB file). The DuckDB state is
# .gitops_data/; a PostgreSQL database gets .gitops_data/postgres_<database>_<hash of the URL>/, with
# its own data repo and Dagster home, so the two never show each other's runs; a Spark Connect server
# (sc://host:port) .gitops_data/spark_<hash of the URL>/, its catalog store (GITOPS_DATA_CATALOG) in it.
_gd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GITOPS_DATA_WAREHOUSE="${GITOPS_DATA_WAREHOUSE:-$_gd_root/.gitops_data/warehouse.duckdb}"
case "$GITOPS_DATA_WAREHOUSE" in
  postgres://*|postgresql://*)
    _gd_db=${GITOPS_DATA_WAREHOUSE##*/}; _gd_db=${_gd_db%%\?*}
    GITOPS_DATA_STATE="$_gd_root/.gitops_data/postgres_${_gd_db//[^A-Za-z0-9_]/_}_$(printf %s "$GITOPS_DATA_WAREHOUSE" | cksum | cut -d' ' -f1)";;
  sc://*)  # Spark Connect: the catalog is kept apart, in a DuckDB file of the state folder
    GITOPS_DATA_STATE="$_gd_root/.gitops_data/spark_$(printf %s "$GITOPS_DATA_WAREHOUSE" | cksum | cut -d' ' -f1)"
    export GITOPS_DATA_CATALOG="${GITOPS_DATA_CATALOG:-$GITOPS_DATA_STATE/catalog.duckdb}";;
  *) GITOPS_DATA_STATE="$_gd_root/.gitops_data";;
esac
export GITOPS_DATA_STATE
export GITOPS_DATA_REPO="$GITOPS_DATA_STATE/shop"
export DAGSTER_HOME="$GITOPS_DATA_STATE/dagster_home"   # a local Dagster instance (SQLite), set up from ./dagster.yaml
unset _gd_root _gd_db
