-- The table for current ClickHouse servers (tested on 26.9 through chdb),
-- with what ClickHouse users expect of a log table; the same columns as
-- schema.sql, so the sink's default `columns` mapping writes either.
-- Debian's 18.16 has none of DateTime64, LowCardinality, codecs beyond
-- LZ4/ZSTD, skip indexes or TTL: use schema.sql there.
--
--   clickhouse-client --multiquery < deploy/clickhouse/schema-current.sql
--
-- `ts` holds what the sink sends: Unix seconds (the event's own time when
-- it has one). Keep the TTL in step with your retention.
CREATE TABLE IF NOT EXISTS logs
(
    ts          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    service     LowCardinality(String),
    env         LowCardinality(String),
    level       LowCardinality(String),
    namespace   LowCardinality(String),
    pod         String CODEC(ZSTD(1)),
    container   LowCardinality(String),
    trace_id    String CODEC(ZSTD(1)),
    request_id  String CODEC(ZSTD(1)),
    status      UInt16,
    duration_ms Float64 CODEC(Gorilla, ZSTD(1)),
    route       LowCardinality(String),
    message     String CODEC(ZSTD(3)),
    error_type  LowCardinality(String),
    sample_rate Float64,
    raw         String CODEC(ZSTD(3)),
    INDEX trace_id_bloom trace_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, level, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY
SETTINGS index_granularity = 8192;
