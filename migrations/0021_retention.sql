-- Retention (`jobapi.services.retention`, `jobapi.services.purge`). A deleted job
-- or graph build leaves every listing and every read at once (`deleted_at` set);
-- the purger then removes its rows and files in small batches, and the row itself
-- last. A deleted job's idempotency key is freed with it. `purged_at`: every row
-- that hung from the job is gone and only its row waits (for another node to
-- delete its WARC files).
ALTER TABLE jobs ADD COLUMN deleted_at timestamptz, ADD COLUMN purged_at timestamptz;
ALTER TABLE graph_builds ADD COLUMN deleted_at timestamptz;
CREATE INDEX jobs_deleted_idx ON jobs (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX graph_builds_deleted_idx ON graph_builds (deleted_at) WHERE deleted_at IS NOT NULL;

-- When a job's row goes, ON DELETE SET NULL finds the jobs that recrawled it here
-- (and a deletion asks whether a running job recrawls it).
CREATE INDEX jobs_recrawl_of_idx ON jobs (recrawl_of) WHERE recrawl_of IS NOT NULL;

-- A schedule keeps only its `keep_last` newest crawls (0: all of them).
ALTER TABLE schedules
    ADD COLUMN keep_last integer NOT NULL DEFAULT 0 CHECK (keep_last BETWEEN 0 AND 100000);
