"""NATS JetStream as a stream target: every change a Debezium-style JSON
envelope on a subject per table, deduplicated by a message ID taken from the
source position (see docs/nats.md)."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "nats",
    target="conveyor.connectors.nats.target:NatsTarget",
    applier="conveyor.connectors.nats.apply:NatsApplier",
)
