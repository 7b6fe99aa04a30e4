-- 006: which template a child notice used ('' for notices sent before this migration), so the limit of
-- one escalation notice per stage per window survives a restart.
ALTER TABLE notices ADD COLUMN stage TEXT NOT NULL DEFAULT '';
