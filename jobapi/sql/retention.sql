-- Retention: deleting jobs and graph builds (jobapi.services.retention) and purging
-- what they leave (jobapi.services.purge). A deletion only marks the row
-- (deleted_at): every read of the API leaves marked rows out at once. The purge
-- deletes the rows that hang from it in batches of a few thousand, each its own
-- short transaction on rows no crawler writes (their job has ended), then the row.

-- The job to delete, locked against a concurrent deletion or recrawl submission.
-- name: lock_job_to_delete
SELECT owner_id, status FROM jobs WHERE id = %s AND deleted_at IS NULL FOR UPDATE;

-- A job that has not ended and recrawls this one (it reads this job's pages).
-- name: active_recrawl_of
SELECT id FROM jobs
WHERE recrawl_of = %s AND deleted_at IS NULL AND status NOT IN ('finished', 'failed', 'cancelled')
ORDER BY created_at LIMIT 1;

-- The graph builds made from this job (they go with it), locked against a claim.
-- name: builds_of_job
SELECT b.id, b.status FROM graph_builds b JOIN graph_build_jobs j ON j.build_id = b.id
WHERE j.job_id = %s AND b.deleted_at IS NULL
ORDER BY b.id FOR UPDATE OF b;

-- name: mark_job_deleted
UPDATE jobs SET deleted_at = now(), idempotency_key = NULL, updated_at = now()
WHERE id = %s RETURNING deleted_at;

-- name: lock_build_to_delete
SELECT owner_id, status FROM graph_builds WHERE id = %s AND deleted_at IS NULL FOR UPDATE;

-- name: mark_builds_deleted
UPDATE graph_builds SET deleted_at = now(), updated_at = now()
WHERE id = ANY(%s) AND deleted_at IS NULL RETURNING deleted_at;

-- The jobs of schedules with keep_last past their N newest (running ones are
-- skipped by the deletion's own checks and come back at the next pass).
-- name: jobs_past_keep_last
SELECT id FROM (
    SELECT j.id, j.status, s.keep_last,
           row_number() OVER (PARTITION BY j.schedule_id
                              ORDER BY j.created_at DESC, j.id DESC) AS newest
    FROM jobs j JOIN schedules s ON s.id = j.schedule_id
    WHERE s.keep_last > 0 AND j.deleted_at IS NULL
) ranked
WHERE newest > keep_last AND status IN ('finished', 'failed', 'cancelled')
ORDER BY id LIMIT %s;

-- The purge. A deleted job or build is taken with SKIP LOCKED, so that several
-- purgers share the work instead of deleting the same rows.
-- (NO KEY UPDATE: a straggling insert of the job's last worker, which only
-- KEY SHAREs the row, does not wait on the purge.)
-- name: next_deleted_job
SELECT id FROM jobs WHERE deleted_at IS NOT NULL AND purged_at IS NULL
ORDER BY deleted_at, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;

-- name: next_deleted_build
SELECT id, path FROM graph_builds WHERE deleted_at IS NOT NULL
ORDER BY deleted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED;

-- One batch of a deleted job's rows, a table at a time: %s job, %s batch size.
-- name: purge_outlinks
DELETE FROM outlinks
WHERE ctid = ANY(ARRAY(SELECT ctid FROM outlinks WHERE job_id = %s LIMIT %s));
-- name: purge_urls
DELETE FROM urls WHERE ctid = ANY(ARRAY(SELECT ctid FROM urls WHERE job_id = %s LIMIT %s));
-- name: purge_pages
DELETE FROM pages WHERE ctid = ANY(ARRAY(SELECT ctid FROM pages WHERE job_id = %s LIMIT %s));
-- name: purge_items
DELETE FROM items WHERE ctid = ANY(ARRAY(SELECT ctid FROM items WHERE job_id = %s LIMIT %s));
-- name: purge_redirects
DELETE FROM redirects
WHERE ctid = ANY(ARRAY(SELECT ctid FROM redirects WHERE job_id = %s LIMIT %s));
-- name: purge_robots_decisions
DELETE FROM robots_decisions
WHERE ctid = ANY(ARRAY(SELECT ctid FROM robots_decisions WHERE job_id = %s LIMIT %s));
-- name: purge_crawl_events
DELETE FROM crawl_events
WHERE ctid = ANY(ARRAY(SELECT ctid FROM crawl_events WHERE job_id = %s LIMIT %s));
-- name: purge_dead_letters
DELETE FROM dead_letters
WHERE ctid = ANY(ARRAY(SELECT ctid FROM dead_letters WHERE job_id = %s LIMIT %s));

-- One batch of a deleted build's nodes: %s build, %s batch size.
-- name: purge_graph_nodes
DELETE FROM graph_nodes
WHERE ctid = ANY(ARRAY(SELECT ctid FROM graph_nodes WHERE build_id = %s LIMIT %s));

-- The WARC files of deleted jobs that this node holds (each node deletes its own).
-- name: deleted_warcs_on_node
SELECT w.job_id, w.name FROM warc_files w JOIN jobs j ON j.id = w.job_id
WHERE j.deleted_at IS NOT NULL AND w.node = %s
ORDER BY w.job_id, w.name LIMIT %s;

-- name: forget_warc
DELETE FROM warc_files WHERE job_id = %s AND name = %s;

-- The job's tables are empty.
-- name: mark_job_purged
UPDATE jobs SET purged_at = now() WHERE id = %s;

-- Rows last, once nothing hangs from them: no WARC file left on any node, no
-- build left to purge (the cascade has nothing left to do but a straggler's row).
-- name: delete_purged_jobs
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs j
    WHERE j.purged_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM warc_files w WHERE w.job_id = j.id)
      AND NOT EXISTS (SELECT 1 FROM graph_build_jobs g WHERE g.job_id = j.id)
    ORDER BY j.purged_at LIMIT %s FOR UPDATE SKIP LOCKED);

-- name: delete_purged_build
DELETE FROM graph_builds WHERE id = %s AND deleted_at IS NOT NULL;

