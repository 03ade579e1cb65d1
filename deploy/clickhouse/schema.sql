-- The table sluice's `clickhouse` sink writes by default (its `columns`
-- mapping names these columns). Only types and clauses that ClickHouse 18.16
-- (Debian's package) already has: no DateTime64, Map, JSON or LowCardinality.
-- Every row carries every column, so no DEFAULT is relied on.
--
-- Create it with either of:
--   clickhouse-client --multiquery < deploy/clickhouse/schema.sql
--   curl --data-binary @deploy/clickhouse/schema.sql 'http://127.0.0.1:8123/'
-- or print it with `sluice schema clickhouse`.
CREATE TABLE IF NOT EXISTS logs
(
    ts          DateTime,  -- the record's ts (RFC 3339, logger formats, epochs; sent as Unix seconds), else when sluice encoded it
    service     String,    -- record `service`, else the source's mapping / container name
    env         String,
    level       String,
    namespace   String,    -- Kubernetes metadata from the file source's path
    pod         String,
    container   String,
    trace_id    String,
    request_id  String,
    status      UInt16,
    duration_ms Float64,
    route       String,    -- route template, never a raw path
    message     String,    -- record `msg`, else the text line
    error_type  String,
    sample_rate Float64,   -- events this row stands for (1 unless sampled)
    raw         String     -- the whole event as sluice writes it
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (service, ts)
