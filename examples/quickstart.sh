#!/usr/bin/env bash
# The main job, end to end, on the embedded default (DuckDB + a local Dagster home):
# install, turn examples/shop into a Git data repo, validate, plan, build + audit + publish.
# With GITOPS_DATA_WAREHOUSE=postgresql://user@host:port/db set, the same on PostgreSQL, in a state
# folder of its own (examples/env.sh); with sc://host:port, on a Spark Connect server (the spark
# extra: .venv/bin/uv pip install 'pyspark[connect]>=4.3,<4.4').
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash .ci/setup
source examples/env.sh   # GITOPS_DATA_WAREHOUSE (default DuckDB), and its own data repo and Dagster home
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
gd="$root/.venv/bin/gitops-data"

if [ ! -d "$GITOPS_DATA_REPO/.git" ]; then
  mkdir -p "$GITOPS_DATA_REPO"
  cp -R examples/shop/. "$GITOPS_DATA_REPO/"
  git -C "$GITOPS_DATA_REPO" init -q -b main
  git -C "$GITOPS_DATA_REPO" add -A
  git -C "$GITOPS_DATA_REPO" -c user.name=quickstart -c user.email=quickstart@example.com commit -q -m "shop project"
fi

echo "== validate";  "$gd" validate --ref main
echo "== plan";      "$gd" plan --ref main
echo "== sync (build, audit, publish)"; "$gd" sync --ref main
echo "== status";    "$gd" status
echo "== what consumers see"
"$root/.venv/bin/python" - <<PY
location = "$GITOPS_DATA_WAREHOUSE"
views = "select table_name from information_schema.tables where table_schema = 'analytics' order by 1"
top = "select * from analytics.top_customers limit 5"
if location.startswith("sc://"):  # Spark Connect (the spark extra): a session of the consumer's own
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote(location).create()
    print(sorted(r[1] for r in spark.sql("show views in analytics").collect()))
    spark.sql(top).show()
elif location.startswith("postgres"):
    import psycopg
    with psycopg.connect(location) as con:
        print([r[0] for r in con.execute(views)])
        for row in con.execute(top):
            print(row)
else:
    import duckdb
    con = duckdb.connect(location, read_only=True)
    print([r[0] for r in con.sql(views).fetchall()])
    print(con.sql(top))
    con.close()
PY
cat <<MSG
Done. The data repo is $GITOPS_DATA_REPO, the warehouse $GITOPS_DATA_WAREHOUSE.
Open the Dagster UI (assets, checks, the git_refs sensor) with:
  cd $root && export GITOPS_DATA_WAREHOUSE='$GITOPS_DATA_WAREHOUSE' && source examples/env.sh && .venv/bin/dagster dev -w workspace.yaml
MSG
