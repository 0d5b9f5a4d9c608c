-- WARC files of jobs (crawler.middlewares.warc): one row per file a worker wrote.
--
-- The file lives on the node that wrote it (node: its host name); the row lets
-- the job API list the files of every node. closed_at is NULL while the file is
-- still being written (named <name>.open on disk); bytes and records are those
-- of the last time the worker reported the file (at its opening and closing).

CREATE TABLE warc_files (
    job_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name      text NOT NULL CHECK (name ~ '^[0-9a-f-]{36}-[A-Za-z0-9]{1,64}-[0-9]{5}\.warc\.gz$'),
    node      text NOT NULL CHECK (char_length(node) BETWEEN 1 AND 255),
    worker    text NOT NULL CHECK (char_length(worker) BETWEEN 1 AND 64),
    bytes     bigint NOT NULL CHECK (bytes >= 0),
    records   integer NOT NULL CHECK (records >= 0),
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    PRIMARY KEY (job_id, name)
);
