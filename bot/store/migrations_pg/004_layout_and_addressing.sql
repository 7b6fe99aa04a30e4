-- 004 (PostgreSQL): same as migrations/004_layout_and_addressing.sql.
CREATE TABLE standings (
    community TEXT NOT NULL,
    account TEXT NOT NULL,
    standing TEXT NOT NULL,
    held INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, account, standing)
);

CREATE TABLE message_turns (
    community TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, message_id)
);
CREATE INDEX message_turns_recent ON message_turns(community, conversation, at);
CREATE INDEX message_turns_at ON message_turns(at);
CREATE INDEX message_turns_author ON message_turns(community, author);
