-- 001 (PostgreSQL): events log, processing watermark, community state, findings, cases, actions outbox, audit.
-- Same tables and columns as migrations/001_initial.sql; timestamps stay ISO-8601 text so both stores
-- compare and return them identically. seq comes from a sequence so several engines can append.
CREATE SEQUENCE events_seq;
CREATE TABLE events (
    seq BIGINT PRIMARY KEY DEFAULT nextval('events_seq'),
    key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    community TEXT NOT NULL,
    at TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    body TEXT NOT NULL
);
ALTER SEQUENCE events_seq OWNED BY events.seq;
CREATE INDEX events_at ON events(at);

CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE accounts (
    community TEXT NOT NULL,
    account TEXT NOT NULL,
    band TEXT NOT NULL DEFAULT 'unknown',
    age INTEGER,
    band_source TEXT,
    created_at TEXT,
    joined_at TEXT,
    first_seen TEXT,
    PRIMARY KEY (community, account)
);

CREATE TABLE regions (
    community TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    PRIMARY KEY (community, account, region)
);

CREATE TABLE contacts (
    community TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_at TEXT NOT NULL,
    event_key TEXT NOT NULL,
    PRIMARY KEY (community, source, target)
);
CREATE INDEX contacts_recent ON contacts(community, first_at);
CREATE INDEX contacts_target ON contacts(community, target);

CREATE TABLE requests (
    community TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    answered_at TEXT,
    event_key TEXT NOT NULL,
    PRIMARY KEY (community, source, target, request_id)
);
CREATE INDEX requests_recent ON requests(community, requested_at);

CREATE TABLE accepted (
    community TEXT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, a, b)
);

CREATE TABLE views (
    community TEXT NOT NULL,
    viewer TEXT NOT NULL,
    hour BIGINT NOT NULL,
    to_minors BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (community, viewer, hour)
);
CREATE INDEX views_hour ON views(hour);

CREATE TABLE conversations (
    community TEXT NOT NULL,
    conversation TEXT NOT NULL,
    private INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    messages BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (community, conversation)
);

CREATE TABLE messages (
    community TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (community, message_id)
);
CREATE INDEX messages_at ON messages(at);
CREATE INDEX messages_author ON messages(community, author);

CREATE TABLE cases (
    id BIGINT PRIMARY KEY,
    platform TEXT NOT NULL,
    community TEXT NOT NULL,
    suspect TEXT NOT NULL,
    status TEXT NOT NULL,
    risk DOUBLE PRECISION NOT NULL,
    risk_at TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    alert_version INTEGER NOT NULL DEFAULT 0,
    dismissals INTEGER NOT NULL DEFAULT 0,
    children TEXT NOT NULL DEFAULT '[]',
    reasons TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX one_active_case ON cases(community, suspect)
    WHERE status IN ('open', 'escalated', 'confirmed');

CREATE TABLE findings (
    id BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases(id),
    detector TEXT NOT NULL,
    community TEXT NOT NULL,
    suspect TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    child TEXT,
    at TEXT NOT NULL,
    event_key TEXT NOT NULL
);
CREATE INDEX findings_case ON findings(case_id);

CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    case_id BIGINT,
    subject TEXT,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX actions_pending ON actions(delivered_at) WHERE delivered_at IS NULL;

CREATE TABLE notices (
    community TEXT NOT NULL,
    child TEXT NOT NULL,
    suspect TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX notices_child ON notices(community, child, at);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    community TEXT,
    case_id BIGINT,
    detail TEXT NOT NULL DEFAULT '{}'
);
