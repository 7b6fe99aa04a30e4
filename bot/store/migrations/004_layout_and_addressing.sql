-- 004: standings that carry no personal tie (moderator, bot, creator), and who wrote which group message.
-- Latest word per (account, standing): held = 1 while it lasts, 0 once withdrawn.
CREATE TABLE standings (
    community TEXT NOT NULL,
    account TEXT NOT NULL,
    standing TEXT NOT NULL,
    held INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, account, standing)
) WITHOUT ROWID;

-- Group-room messages (no text): resolves a reply to its author and shows who took turns lately
-- (bot.addressing). Kept for store.message_retention_days, erased with the author.
CREATE TABLE message_turns (
    community TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (community, message_id)
) WITHOUT ROWID;
CREATE INDEX message_turns_recent ON message_turns(community, conversation, at);
CREATE INDEX message_turns_at ON message_turns(at);
CREATE INDEX message_turns_author ON message_turns(community, author);

-- Hub degree is a count over one account's accepted contacts (primary-key range already).
