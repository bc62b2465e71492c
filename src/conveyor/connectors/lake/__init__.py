"""The ``lake`` target: raw files laid out as the migration service's S3 target
writes them (``<bucket_path>/<schema>/<table>/LOAD00000001.csv`` for a full
load, timestamp-named change files with an ``Op`` column for CDC), on a local
folder or an S3-compatible object store. See ``layout`` for every choice made
where the service's behaviour is undocumented or differs."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "lake",
    target="conveyor.connectors.lake.target:LakeTarget",
    applier="conveyor.connectors.lake.apply:LakeApplier",
)
