-- 002 (PostgreSQL): reads for the account-pattern detectors; same as migrations/002_account_patterns.sql.
CREATE TABLE view_authors (
    community TEXT NOT NULL,
    viewer TEXT NOT NULL,
    hour BIGINT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (community, viewer, hour, author)
);
CREATE INDEX view_authors_hour ON view_authors(hour);

CREATE INDEX views_community_hour ON views(community, hour);
