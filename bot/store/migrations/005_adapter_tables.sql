-- 005: the adapters' own tables, in the engine's database (SQLite file or PostgreSQL) so that a PostgreSQL
-- deployment keeps them there too and `forget` sweeps them. Adapters write them through their own
-- connection (Store.tables()). IF NOT EXISTS: SQLite files from before 005 already hold these tables,
-- created by the adapters themselves; their rows are kept.

-- Discord: where each case's alert card is, and which actions were carried out.
CREATE TABLE IF NOT EXISTS discord_cards (
    case_id INTEGER PRIMARY KEY,
    guild_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    alert TEXT NOT NULL,
    undelivered TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS discord_done (
    action_id TEXT PRIMARY KEY,
    done_at TEXT NOT NULL
);

-- Matrix: sync token, alert cards, DMs with children, pending invites, mutes, confirmation prompts.
CREATE TABLE IF NOT EXISTS matrix_sync (account TEXT PRIMARY KEY, next_batch TEXT NOT NULL, saved_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_cards (
    community TEXT NOT NULL, case_id INTEGER NOT NULL, room_id TEXT NOT NULL, event_id TEXT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (community, case_id));
CREATE INDEX IF NOT EXISTS matrix_cards_event ON matrix_cards(event_id);
CREATE TABLE IF NOT EXISTS matrix_delivered (action_id TEXT PRIMARY KEY, event_id TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_dms (account TEXT PRIMARY KEY, room_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_invites (
    request_id TEXT PRIMARY KEY, community TEXT NOT NULL, inviter TEXT NOT NULL, invitee TEXT NOT NULL,
    event_id TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS matrix_invites_at ON matrix_invites(at);
CREATE TABLE IF NOT EXISTS matrix_prompts (
    event_id TEXT PRIMARY KEY, community TEXT NOT NULL, case_id INTEGER NOT NULL, decision TEXT NOT NULL,
    asked_by TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS matrix_mutes (
    room_id TEXT NOT NULL, account TEXT NOT NULL, until TEXT NOT NULL, previous INTEGER,
    PRIMARY KEY (room_id, account));
