#!/usr/bin/env bash
# The quickstart as `make demo` runs it: the seed's customer and sales tables,
# from an SQLite file into the embedded DuckDB warehouse.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CONVEYOR_VENV:-$here/../../.venv/bin}"  # another environment: CONVEYOR_VENV=/path/bin
export CONVEYOR_HOME="$here/.conveyor"
rm -rf "$CONVEYOR_HOME" "$here/data"

echo "== Creating the SQLite source"
"$venv/python" "$here/make_source.py" "$here/data/shop.sqlite"

echo "== conveyor apply"
"$venv/conveyor" apply "$here/conveyor.yaml"

echo "== conveyor tasks start shop-full-load --wait"
"$venv/conveyor" tasks start shop-full-load --wait

echo "== conveyor validate shop-full-load"
"$venv/conveyor" validate shop-full-load

echo "== conveyor events list"
"$venv/conveyor" events list

echo "== Change data capture: conveyor tasks start shop-sync (a full load, then every change)"
"$venv/conveyor" tasks start shop-sync
"$venv/python" "$here/change_source.py" "$venv/conveyor" "$here/data/shop.sqlite"
"$venv/conveyor" tasks stop shop-sync
for _ in $(seq 1 60); do
  status="$("$venv/conveyor" tasks describe shop-sync --json | "$venv/python" -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
  [ "$status" = stopped ] && break
  sleep 0.5
done
"$venv/conveyor" tasks describe shop-sync

echo "== A query over the warehouse (DuckDB): customer 103 arrived, sale 100 changed, sale 105 is gone"
"$venv/python" - "$here/data/warehouse.duckdb" <<'PY'
import sys
import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
print(con.sql("SELECT * FROM dbo.customer ORDER BY cust_id"))
print(con.sql("SELECT * FROM dbo.fact_sales_stg ORDER BY order_number"))
print(con.sql(
    "SELECT c.cust_name, c.cust_city, count(s.order_number) AS orders, sum(s.order_amt) AS total "
    "FROM dbo.customer c LEFT JOIN dbo.fact_sales_stg s USING (cust_id) GROUP BY ALL ORDER BY total DESC"
))
PY
