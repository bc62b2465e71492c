"""The curation job over an applied stack's lakes: what `conveyor lake
process` runs, and what a state machine's ``glue:startJobRun`` Task starts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.extras import needs_extra
from conveyor.core.names import did_you_mean
from conveyor.lake.controller import Controller, Lake, open_lakes
from conveyor.lake.declarations import LakeDeclarations

if TYPE_CHECKING:
    from conveyor.lake.curate import TableResult
    from conveyor.lake.spark_engine import SparkEngine


@contextmanager
def lakes_with_controllers(
    stack: LakeDeclarations, only: str | None = None
) -> Iterator[list[tuple[Lake, Controller]]]:
    """The stack's lakes (or only the one named) with their controllers,
    seeded from the stack's ``lake_tables``."""
    lakes = open_lakes(stack)
    try:
        names = [lake.name for lake in lakes]
        if only is not None and only not in names:
            raise NotFoundError(
                f"no lake endpoint named {only!r} (lakes: {', '.join(names) or '-'})"
                + did_you_mean(only, names)
            )
        pairs = []
        for lake in lakes:
            if only is not None and lake.name != only:
                continue
            controller = Controller(lake)
            if controller.seed():
                controller.save()
            pairs.append((lake, controller))
        yield pairs
    finally:
        for lake in lakes:
            lake.close()


ENGINES = ("embedded", "spark")


def curate(
    stack: LakeDeclarations,
    lake: str | None = None,
    table: str | None = None,
    engine: str | None = None,
    master: str | None = None,
) -> list[TableResult]:
    """One curation run over the active tables (or only ``table``, schema.table),
    with ``engine`` (else the lake endpoint's ``curation_engine``, else the
    embedded one); ``spark`` runs on ``master`` (else the endpoint's ``spark_master``)."""
    with needs_extra("lake curation", "lake"):
        from conveyor.lake.curate import process  # deltalake loads only for the lake's work

    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"unknown curation engine {engine!r} (engines: {', '.join(ENGINES)})")
    results: list[TableResult] = []
    sparks: dict[str, SparkEngine] = {}
    try:
        with lakes_with_controllers(stack, lake) as pairs:
            if table is not None and not any(table in c.entries for _, c in pairs):
                known = [name for _, c in pairs for name in c.entries]
                raise NotFoundError(f"no lake table named {table!r}" + did_you_mean(table, known))
            for owner, controller in pairs:
                chosen = engine or owner.curation.get("curation_engine") or "embedded"
                runner = None
                if chosen == "spark":
                    url = master or owner.curation.get("spark_master")
                    if not url:
                        raise ConfigError(
                            f"lake {owner.name!r}: the Spark engine needs a master "
                            "(--master spark://HOST:7077, or the endpoint's spark_master)"
                        )
                    if url not in sparks:
                        from conveyor.lake.spark_engine import SparkEngine

                        sparks[url] = SparkEngine(url)
                    runner = sparks[url]
                results.extend(process(owner, controller, None if table is None else [table], runner))
    finally:
        for one in sparks.values():
            one.close()
    return results
