-- Links by URL id, a page's links in one row. A URL is stored once per job, in
-- `urls`, under a 64-bit id: `hashtextextended(url, 0)`, the server's own hash
-- of the text (the one hash partitioning relies on, so it stays the same across
-- releases). `outlinks` holds one row per source page: the ids of the pages it
-- links to, packed. A link row used to hold its two URLs (84 bytes each on
-- average), once in the table and again in each of two B-tree indexes, and
-- PostgreSQL's 28 bytes of row overhead; a link is now 8 bytes of target id, 4
-- of count, 1 of nofollow and its anchor text, and the graph read sends a page's
-- targets as they lie.
--
-- Packed columns, the n-th link of the row at the n-th place of each:
--   target_ids    8 bytes a link, a big-endian int8 (`int8send`), ascending
--   counts        4 bytes a link, a big-endian int4: the <a>/<area> elements of
--                 the source page pointing at the target
--   nofollow      1 byte a link, 1 or 0
--   anchor_texts  text[], one a link
-- `links` (one row per link, ids) and `link_urls` (with the URLs) are views
-- that unpack them, for SQL.
--
-- Two URLs of one job with the same id are refused where they are written
-- (`crawler.pipelines.store`: the link goes to dead_letters saying so); this
-- conversion fails on the primary key instead, naming the id.
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

-- No foreign key to jobs: the purge deletes a job's links before its row
-- (`jobapi.services.purge`), and nothing else deletes a job.
CREATE TABLE outlinks (
    job_id       uuid NOT NULL,
    source_id    bigint NOT NULL,
    target_ids   bytea NOT NULL,
    counts       bytea NOT NULL,
    nofollow     bytea NOT NULL,
    anchor_texts text[] NOT NULL,
    PRIMARY KEY (job_id, source_id),
    CHECK (length(target_ids) > 0 AND length(target_ids) % 8 = 0
           AND length(counts) = length(target_ids) / 2
           AND length(nofollow) = length(target_ids) / 8
           AND cardinality(anchor_texts) = length(target_ids) / 8)
);

INSERT INTO outlinks (job_id, source_id, target_ids, counts, nofollow, anchor_texts)
SELECT job_id, s, string_agg(int8send(t), ''::bytea ORDER BY t),
       string_agg(int4send(count), ''::bytea ORDER BY t),
       string_agg(CASE WHEN nofollow THEN '\x01'::bytea ELSE '\x00'::bytea END, ''::bytea
                  ORDER BY t),
       array_agg(anchor_text ORDER BY t)
FROM (SELECT job_id, hashtextextended(source_url, 0) AS s, hashtextextended(target_url, 0) AS t,
             count, nofollow, anchor_text FROM links) AS l
GROUP BY job_id, s;
DROP TABLE links;

-- The n-th (from 0) big-endian int8 / int4 of a packed column.
CREATE FUNCTION packed_int8(bytes bytea, n integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ('x' || encode(substr(bytes, n * 8 + 1, 8), 'hex'))::bit(64)::bigint;
CREATE FUNCTION packed_int4(bytes bytea, n integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ('x' || encode(substr(bytes, n * 4 + 1, 4), 'hex'))::bit(32)::integer;

CREATE VIEW links AS
SELECT o.job_id, o.source_id, packed_int8(o.target_ids, n) AS target_id,
       packed_int4(o.counts, n) AS count, o.anchor_texts[n + 1] AS anchor_text,
       get_byte(o.nofollow, n) = 1 AS nofollow
FROM outlinks AS o, generate_series(0, length(o.target_ids) / 8 - 1) AS n;

CREATE VIEW link_urls AS
SELECT l.job_id, s.url AS source_url, t.url AS target_url, l.count, l.anchor_text, l.nofollow
FROM links AS l
JOIN urls AS s ON s.job_id = l.job_id AND s.id = l.source_id
JOIN urls AS t ON t.job_id = l.job_id AND t.id = l.target_id;
