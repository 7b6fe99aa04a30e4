-- 003 (PostgreSQL): detector memory; same as migrations/003_detector_memory.sql.
CREATE TABLE detector_memory (
    detector TEXT NOT NULL,
    community TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    accounts TEXT NOT NULL DEFAULT '[]',
    expires_at TEXT,
    PRIMARY KEY (detector, community, key)
);
CREATE INDEX detector_memory_expiry ON detector_memory(community, expires_at) WHERE expires_at IS NOT NULL;
