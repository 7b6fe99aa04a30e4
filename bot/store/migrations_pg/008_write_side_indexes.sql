-- 008: two indexes that cost every insert and served almost nothing. message_turns_author helped only a
-- community-scoped erasure, which reads every row of every table in its sweep anyway (SqlStore._sweep);
-- it was ~15 % of the SQLite writer's time in bench/engine.py. views_hour served no query at all
-- (views_community_hour serves the community baseline).
DROP INDEX IF EXISTS message_turns_author;
DROP INDEX IF EXISTS views_hour;
