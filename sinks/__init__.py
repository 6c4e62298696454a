"""Archive sinks: the ClickHouse client factory, the batching archive sink and the analytics (see README.md)."""
