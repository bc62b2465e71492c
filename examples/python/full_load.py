"""The Python API: apply a stack file, run a full load to its end, describe it.

    python examples/quickstart/make_source.py examples/quickstart/data/shop.sqlite
    python examples/python/full_load.py                      # the quickstart's stack and task
    python examples/python/full_load.py STACK.yaml TASK --home DIR

The store is under ``--home`` (default ``$CONVEYOR_HOME`` or ``./.conveyor``); the
same calls back the ``conveyor`` command and the REST API, so
``conveyor tasks describe TASK --json`` prints what ``describe_task`` returns here.
Exit code 1 when the task failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conveyor import Conveyor

QUICKSTART = Path(__file__).resolve().parents[1] / "quickstart" / "conveyor.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack", nargs="?", type=Path, default=QUICKSTART, help="the stack file")
    parser.add_argument("task", nargs="?", default="shop-full-load", help="a full-load task it declares")
    parser.add_argument("--home", type=Path, default=None, help="where the metadata store is")
    args = parser.parse_args(argv)

    with Conveyor(home=args.home) as conveyor:
        applied = conveyor.apply(args.stack)
        for line in applied.changes:
            print(line)
        finished = conveyor.start_task(args.task, wait=True)
        print(f"task {finished.task}: {finished.status} (stop reason {finished.stop_reason})")
        if finished.last_error:
            print(f"error: {finished.last_error}")
        for table in conveyor.describe_task(args.task).tables:
            print(f"{table.SchemaName}.{table.TableName}: {table.TableState}, {table.FullLoadRows} rows")
    return 1 if finished.status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
