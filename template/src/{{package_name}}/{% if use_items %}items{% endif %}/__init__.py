"""The `items` example slice: schemas, repository Protocol and backends, service, router."""
