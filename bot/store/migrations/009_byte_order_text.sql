-- 009: nothing to do in SQLite, whose text compares byte by byte (BINARY) unless a column says otherwise.
-- PostgreSQL's 009 makes its text columns compare the same way (migrations_pg/009_byte_order_text.sql).
SELECT 1;
