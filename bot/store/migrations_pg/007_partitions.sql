-- 007: partitioned processing (groomguard.store.partitions). Communities hash to a fixed number of
-- partitions (store.partitions); each engine process leases a share of them and processes only their
-- events, from each partition's watermark. The rows of `partitions` are created at first open with the
-- configured count, their watermarks from meta's single watermark of the one-processor era; older
-- events get their `part` then too.
ALTER TABLE events ADD COLUMN IF NOT EXISTS part INTEGER;
CREATE INDEX IF NOT EXISTS events_part_seq ON events (part, seq);
CREATE TABLE IF NOT EXISTS partitions (
    part INTEGER PRIMARY KEY,
    owner TEXT,
    expires_at TIMESTAMPTZ,
    watermark BIGINT NOT NULL DEFAULT 0,
    watermark_at TEXT,
    processed BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS engine_members (
    owner TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    joined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
