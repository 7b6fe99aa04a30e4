-- 001: events log, processing watermark, community state, findings, cases, actions outbox, audit.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    community TEXT NOT NULL,
    at TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_at ON events(at);

CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

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
) WITHOUT ROWID;

CREATE TABLE regions (
    community TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    PRIMARY KEY (community, account, region)
) WITHOUT ROWID;

-- First contact per directed pair: who started it, how and when.
CREATE TABLE contacts (
    community TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_at TEXT NOT NULL,
    event_key TEXT NOT NULL,
    PRIMARY KEY (community, source, target)
) WITHOUT ROWID;
CREATE INDEX contacts_recent ON contacts(community, first_at);
CREATE INDEX contacts_target ON contacts(community, target);

-- Requests that can be answered (friend, follow, dm, invite) and how they ended.
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
) WITHOUT ROWID;
CREATE INDEX requests_recent ON requests(community, requested_at);

-- Accepted contact, stored in both directions so neighbour look-ups are one index range.
CREATE TABLE accepted (
    community TEXT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, a, b)
) WITHOUT ROWID;

-- Views bucketed by hour (hour = unix seconds // 3600).
CREATE TABLE views (
    community TEXT NOT NULL,
    viewer TEXT NOT NULL,
    hour INTEGER NOT NULL,
    to_minors INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (community, viewer, hour)
) WITHOUT ROWID;
CREATE INDEX views_hour ON views(hour);

CREATE TABLE conversations (
    community TEXT NOT NULL,
    conversation TEXT NOT NULL,
    private INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (community, conversation)
) WITHOUT ROWID;

-- Message text is kept only for the retention period (store.message_retention_days).
CREATE TABLE messages (
    community TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (community, message_id)
) WITHOUT ROWID;
CREATE INDEX messages_at ON messages(at);
CREATE INDEX messages_author ON messages(community, author);

CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL,
    community TEXT NOT NULL,
    suspect TEXT NOT NULL,
    status TEXT NOT NULL,
    risk REAL NOT NULL,
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
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    detector TEXT NOT NULL,
    community TEXT NOT NULL,
    suspect TEXT NOT NULL,
    score REAL NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    child TEXT,
    at TEXT NOT NULL,
    event_key TEXT NOT NULL
);
CREATE INDEX findings_case ON findings(case_id);

-- Outbox: actions are written with the state change that caused them, delivered after commit.
CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    case_id INTEGER,
    subject TEXT,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX actions_pending ON actions(delivered_at) WHERE delivered_at IS NULL;

-- Child notices sent, for the rate limit.
CREATE TABLE notices (
    community TEXT NOT NULL,
    child TEXT NOT NULL,
    suspect TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX notices_child ON notices(community, child, at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    community TEXT,
    case_id INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
