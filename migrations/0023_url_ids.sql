-- Links by URL id. A URL is stored once per job, in `urls`, under a 64-bit id:
-- `hashtextextended(url, 0)`, the server's own hash of the text (the one hash
-- partitioning relies on, so it stays the same across releases). A link row
-- holds the two ids instead of the two URLs, which were 84 bytes each on
-- average, once in the table and again in each of two B-tree indexes.
--
-- Two URLs of one job with the same id are refused where they are written
-- (`crawler.pipelines.store`: the link goes to dead_letters saying so); this
-- conversion fails on the primary key instead, naming the id.
--
-- `link_urls` shows the links with their URLs, as `links` had them, for reading
-- in SQL.
CREATE TABLE urls (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    id     bigint NOT NULL,
    url    text COLLATE "C" NOT NULL CHECK (url ~ '^https?://'),
    PRIMARY KEY (job_id, id)
);
-- Listings by URL (a prefix, and keyset order) find ids here.
CREATE INDEX urls_job_url_idx ON urls (job_id, url);

INSERT INTO urls (job_id, id, url)
SELECT job_id, hashtextextended(url, 0), url
FROM (SELECT job_id, source_url AS url FROM links
      UNION
      SELECT job_id, target_url FROM links) AS endpoints;

ALTER TABLE links RENAME TO links_by_text;
ALTER INDEX links_job_target_idx RENAME TO links_by_text_job_target_idx;
ALTER TABLE links_by_text RENAME CONSTRAINT links_pkey TO links_by_text_pkey;

-- No foreign key to jobs: checking it, row by row, took a quarter of the time
-- of storing a link. The purge deletes a job's links before its row
-- (`jobapi.services.purge`), and nothing else deletes a job.
CREATE TABLE links (
    job_id      uuid NOT NULL,
    source_id   bigint NOT NULL,
    target_id   bigint NOT NULL,
    -- How many <a>/<area> elements on the source page point at the target:
    -- set (never added to) on conflict, so a replayed page stores nothing twice.
    count       integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    anchor_text text NOT NULL DEFAULT '',
    nofollow    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, source_id, target_id)
);

INSERT INTO links (job_id, source_id, target_id, count, anchor_text, nofollow)
SELECT job_id, hashtextextended(source_url, 0), hashtextextended(target_url, 0), count,
       anchor_text, nofollow
FROM links_by_text;
DROP TABLE links_by_text;

-- A page's incoming links (deduplicated by B-tree: one entry per target and job).
CREATE INDEX links_job_target_idx ON links (job_id, target_id);

CREATE VIEW link_urls AS
SELECT l.job_id, s.url AS source_url, t.url AS target_url, l.count, l.anchor_text, l.nofollow
FROM links AS l
JOIN urls AS s ON s.job_id = l.job_id AND s.id = l.source_id
JOIN urls AS t ON t.job_id = l.job_id AND t.id = l.target_id;
