#!/usr/bin/env bash
# The main job, end to end, on the embedded default (DuckDB + a local Dagster home):
# install, turn examples/shop into a Git data repo, validate, plan, build + audit + publish.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash .ci/setup
state="$root/.gitops_data"
export GITOPS_DATA_REPO="$state/shop"
export GITOPS_DATA_WAREHOUSE="$state/warehouse.duckdb"
export DAGSTER_HOME="$state/dagster_home"   # a local Dagster instance (SQLite), set up from ./dagster.yaml
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
import duckdb
con = duckdb.connect("$GITOPS_DATA_WAREHOUSE", read_only=True)
print(con.sql("select table_name as view from information_schema.tables where table_schema = 'analytics' order by 1").fetchall())
print(con.sql("select * from analytics.top_customers limit 5"))
con.close()
PY
cat <<MSG
Done. The data repo is $GITOPS_DATA_REPO, the warehouse $GITOPS_DATA_WAREHOUSE.
Open the Dagster UI (assets, checks, the git_refs sensor) with:
  cd $root && GITOPS_DATA_REPO=$GITOPS_DATA_REPO GITOPS_DATA_WAREHOUSE=$GITOPS_DATA_WAREHOUSE DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev -w workspace.yaml
MSG
