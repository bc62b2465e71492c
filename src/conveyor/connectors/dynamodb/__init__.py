"""DynamoDB as a source: items flattened into relational tables (see ``infer``)."""
