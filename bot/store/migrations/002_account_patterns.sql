-- 002: reads for the account-pattern detectors (fan_out, rejections, view_spike, new_account_contact).
-- Which minors' content a viewer saw in an hour, so a spike can require several distinct children.
-- Only the recent hours are kept (purged with retention): one row per viewer, hour and minor author.
CREATE TABLE view_authors (
    community TEXT NOT NULL,
    viewer TEXT NOT NULL,
    hour INTEGER NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (community, viewer, hour, author)
) WITHOUT ROWID;
CREATE INDEX view_authors_hour ON view_authors(hour);

-- Community view share per hour is a range over (community, hour).
CREATE INDEX views_community_hour ON views(community, hour);
