"""Documents benchmark: DynamoDB items flattened to Arrow, against a per-item Python loop.

Builds ``--items`` seed-shaped orders (``/work/shared/seeds/004_*``: OrderId,
CustomerId, an ISO-8601 OrderDate, Total with cents, and a list ``Items`` of
1-9 maps {Sku, Q}, 5 on average) in DynamoDB's JSON wire format, cut into Scan
response pages of ``--page-items`` items (what the source receives: a page
body as bytes). Each run flattens every page into the two tables ``orders``
(OrderId text, CustomerId text, OrderDate timestamptz, Total decimal(38,2))
and ``order_items`` (OrderId, position, Sku, Q int64):

  arrow  what the DynamoDB source does: ``flatten.read_page`` (Arrow's JSON
         reader) then ``flatten.flatten`` for the parent and the child table,
         page by page, single-threaded
  loop   a straightforward per-item Python loop: ``json.loads`` of the page,
         then for each item and each line item, the values converted
         (``datetime.fromisoformat``, ``Decimal``, ``int``) into per-column
         lists, turned into Arrow arrays at the end

Runs alternate (loop, arrow, loop, arrow ...) for ``--rounds`` rounds, each in
its own child process so its peak RSS (ru_maxrss, including the pages held in
memory) is its own; the report gives median seconds, items/s, the ratio
loop/arrow and the peak RSS. Both runs must produce the same row counts and
checksums. ``--no-gc`` turns Python's cyclic garbage collector off in the
timed part of both modes: the loop retains millions of objects, and the
collector's passes over them are part of its cost in a normal process; with
it off, the ratio shows the conversion work alone.

    .venv/bin/python bench/documents.py                 # 1,000,000 items, 3 rounds
    .venv/bin/python bench/documents.py --items 200000
    .venv/bin/python bench/documents.py --quick         # 20,000 items, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from conveyor.connectors.dynamodb.flatten import PageReader, flatten, read_page  # noqa: E402
from conveyor.connectors.dynamodb.infer import DocumentLayout, Node, layout  # noqa: E402
from conveyor.core.schema import TableRef  # noqa: E402

TARGET_RATIO = 5.0


def clock(i: int) -> str:
    return f"{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"


def make_pages(items: int, page_items: int, seed: int = 4) -> list[bytes]:
    """Scan response bodies, compact JSON as DynamoDB sends them."""
    rng = random.Random(seed)
    pages: list[bytes] = []
    for start in range(0, items, page_items):
        batch = []
        for i in range(start, min(items, start + page_items)):
            lines = rng.randint(1, 9)
            batch.append(
                {
                    "OrderId": {"S": f"ORD-{20240615 + i // 100000}-{i:07d}"},
                    "CustomerId": {"S": f"CUST-{rng.randint(1, 99999)}"},
                    "OrderDate": {"S": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{clock(i)}Z"},
                    "Items": {
                        "L": [
                            {
                                "M": {
                                    "Sku": {"S": f"SKU{rng.randint(1, 5000)}"},
                                    "Q": {"N": str(rng.randint(1, 50))},
                                }
                            }
                            for _ in range(lines)
                        ]
                    },
                    "Total": {"N": f"{rng.randint(0, 99999)}.{rng.randint(0, 99):02d}"},
                }
            )
        body = {"Items": batch, "Count": len(batch), "ScannedCount": len(batch)}
        if start + page_items < items:
            body["LastEvaluatedKey"] = {"OrderId": batch[-1]["OrderId"]}
        pages.append(json.dumps(body, separators=(",", ":")).encode())
    return pages


def seed_layout(pages: list[bytes]) -> DocumentLayout:
    node = Node()
    node.observe_map(read_page(pages[0]).items)
    return layout(node, TableRef("dynamodb", "Orders"), {"OrderId": "S"}, variant="_variant")


def run_arrow(pages: list[bytes], doc: DocumentLayout) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    parents, children = [], []
    reader = PageReader()
    for body in pages:
        items = reader.read_page(body).items
        parents.append(flatten(items, doc.parent).batch)
        children.append(flatten(items, doc.children[0]).batch)
    return parents, children


def run_loop(pages: list[bytes], doc: DocumentLayout) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    order_id: list[str] = []
    customer: list[str | None] = []
    ordered: list[datetime | None] = []
    total: list[Decimal | None] = []
    line_order: list[str] = []
    position: list[int] = []
    sku: list[str | None] = []
    quantity: list[int | None] = []
    for body in pages:
        for item in json.loads(body)["Items"]:
            key = item["OrderId"]["S"]
            order_id.append(key)
            value = item.get("CustomerId")
            customer.append(value["S"] if value else None)
            value = item.get("OrderDate")
            ordered.append(datetime.fromisoformat(value["S"]) if value else None)
            value = item.get("Total")
            total.append(Decimal(value["N"]) if value else None)
            for index, element in enumerate(item.get("Items", {}).get("L", [])):
                line = element["M"]
                line_order.append(key)
                position.append(index)
                value = line.get("Sku")
                sku.append(value["S"] if value else None)
                value = line.get("Q")
                quantity.append(int(value["N"]) if value else None)
    parent_schema = doc.parent.schema.arrow_schema()
    child_schema = doc.children[0].schema.arrow_schema()
    parent = pa.RecordBatch.from_arrays(
        [
            pa.array(order_id, pa.string()),
            pa.array(customer, pa.string()),
            pa.array(ordered, parent_schema.field("OrderDate").type),
            pa.array(total, parent_schema.field("Total").type),
            pa.nulls(len(order_id), pa.string()),
        ],
        schema=parent_schema,
    )
    child = pa.RecordBatch.from_arrays(
        [
            pa.array(line_order, pa.string()),
            pa.array(position, pa.int64()),
            pa.array(sku, pa.string()),
            pa.array(quantity, child_schema.field("Q").type),
            pa.nulls(len(line_order), pa.string()),
        ],
        schema=child_schema,
    )
    return [parent], [child]


def checksum(parents: list[pa.RecordBatch], children: list[pa.RecordBatch]) -> dict[str, Any]:
    p = pa.Table.from_batches(parents)
    c = pa.Table.from_batches(children)
    return {
        "orders": p.num_rows,
        "order_items": c.num_rows,
        "total": str(pc.sum(p.column("Total")).as_py()),
        "quantity": pc.sum(c.column("Q")).as_py(),
        "positions": pc.sum(c.column("position")).as_py(),
        "epoch_us": pc.sum(p.column("OrderDate").cast(pa.int64())).as_py(),
        "skus": pc.sum(pc.utf8_length(c.column("Sku"))).as_py(),
    }


def child(mode: str, items: int, page_items: int, no_gc: bool = False) -> dict[str, Any]:
    import gc
    import resource

    pages = make_pages(items, page_items)
    if no_gc:
        gc.disable()
    doc = seed_layout(pages)
    run = run_arrow if mode == "arrow" else run_loop
    started = time.perf_counter()
    parents, children = run(pages, doc)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": mode,
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "bytes": sum(len(p) for p in pages),
        "checksum": checksum(parents, children),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-items", type=int, default=2500, help="items per Scan page (~1 MB)")
    parser.add_argument("--quick", action="store_true", help="20,000 items, 1 round")
    parser.add_argument(
        "--no-gc", action="store_true", help="disable Python's cyclic GC in the timed part (both modes)"
    )
    parser.add_argument("--child", choices=("arrow", "loop"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.items, args.page_items, args.no_gc)))
        return 0
    if args.quick:
        args.items, args.rounds = 20_000, 1
    runs: dict[str, list[dict[str, Any]]] = {"arrow": [], "loop": []}
    for _ in range(args.rounds):
        for mode in ("loop", "arrow"):
            command = [sys.executable, __file__, "--child", mode, "--items", str(args.items)]
            command += ["--no-gc"] if args.no_gc else []
            out = subprocess.run(
                [*command, "--page-items", str(args.page_items)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(result)
            print(
                f"{mode:5s} {result['seconds']:7.2f} s  {args.items / result['seconds']:>10,.0f} items/s  "
                f"peak RSS {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    sums = {json.dumps(r["checksum"], sort_keys=True) for rs in runs.values() for r in rs}
    if len(sums) != 1:
        print("MISMATCH between runs:", *sums, sep="\n  ")
        return 1
    arrow = statistics.median(r["seconds"] for r in runs["arrow"])
    loop = statistics.median(r["seconds"] for r in runs["loop"])
    ratio = loop / arrow
    check = runs["arrow"][0]["checksum"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\n{args.items:,} items ({check['order_items']:,} line items, "
        f"{runs['arrow'][0]['bytes'] / 1e6:.0f} MB of Scan pages), {args.rounds} round(s), medians:\n"
        f"  per-item loop  {loop:.2f} s  ({args.items / loop:,.0f} items/s), "
        f"peak RSS {max(r['peak_rss_mb'] for r in runs['loop']):.0f} MB\n"
        f"  arrow flatten  {arrow:.2f} s  ({args.items / arrow:,.0f} items/s), "
        f"peak RSS {max(r['peak_rss_mb'] for r in runs['arrow']):.0f} MB\n"
        f"  ratio {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
