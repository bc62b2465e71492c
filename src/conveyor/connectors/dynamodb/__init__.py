"""DynamoDB as a source: items flattened into relational tables (see ``infer``)."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "dynamodb",
    source="conveyor.connectors.dynamodb.source:DynamoDBSource",
    change_source="conveyor.connectors.dynamodb.streams:DynamoDBChangeSource",
)
