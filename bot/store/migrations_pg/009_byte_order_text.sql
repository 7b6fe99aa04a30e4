-- 009 (PostgreSQL): every text column of the schema compares byte by byte (COLLATE "C"), whatever locale
-- the database was created with. Times are ISO 8601 text and ids are ordered as Python orders str: under
-- a language collation (en_US, ICU) "B7" sorts after "a3" and punctuation may be ignored, so the store
-- and the in-memory overlay (groomguard.state) would order the same turns differently. C is also the
-- fastest collation to compare. Columns already in C are left alone (a database created with --locale=C).
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT c.table_name, c.column_name
        FROM information_schema.columns AS c
        JOIN information_schema.tables AS t USING (table_schema, table_name)
        WHERE c.table_schema = current_schema()
          AND t.table_type = 'BASE TABLE'
          AND c.data_type = 'text'
          AND COALESCE(c.collation_name, '') <> 'C'
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', col.table_name, col.column_name);
    END LOOP;
END $$;
