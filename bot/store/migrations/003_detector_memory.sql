-- 003: detector memory (bot.memory): what a detector remembers between events, committed with each batch.
-- `accounts` is a JSON array of every account id the row is about, so erasure can find it.
CREATE TABLE detector_memory (
    detector TEXT NOT NULL,
    community TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    accounts TEXT NOT NULL DEFAULT '[]',
    expires_at TEXT,
    PRIMARY KEY (detector, community, key)
) WITHOUT ROWID;
CREATE INDEX detector_memory_expiry ON detector_memory(community, expires_at) WHERE expires_at IS NOT NULL;
