-- Jobs: submission, reading, cancelling, listing and recovery.
-- The column list is written once (job_columns); jobapi.services.jobs.job_from_row
-- reads rows in that order. Optional filters are static: a NULL parameter
-- leaves its condition out.

-- fragment: job_columns
id, owner_id, spider, status, params, settings, tags, priority, workers, scrapyd_jobs,
stats, close_reason, error, created_at, updated_at, started_at, finished_at

-- For answers (GET a job, the listing): the jsonb documents come as text and go out
-- untouched (msgspec.Raw), which spares decoding and re-encoding three documents per row.
-- fragment: job_text_columns
id, owner_id, spider, status, params::text, settings::text, tags, priority, workers,
scrapyd_jobs, stats::text, close_reason, error, created_at, updated_at, started_at,
finished_at

-- fragment: page_columns
url, final_url, status, content_type, title, depth, fetched_at, size, content_hash,
elapsed_ms, rendered, error, etag, last_modified, change

-- name: insert_job
INSERT INTO jobs (id, owner_id, spider, params, settings, tags, priority, workers,
                  idempotency_key, recrawl_of)
VALUES (%(id)s, %(owner_id)s, %(spider)s, %(params)s, %(settings)s, %(tags)s, %(priority)s,
        %(workers)s, %(key)s, %(recrawl_of)s)
ON CONFLICT (owner_id, idempotency_key) DO NOTHING
RETURNING {job_columns};

-- name: job_by_key
SELECT {job_columns} FROM jobs WHERE owner_id = %s AND idempotency_key = %s;

-- name: job_by_id
SELECT {job_columns} FROM jobs WHERE id = %s AND deleted_at IS NULL;

-- name: job_text_by_id
SELECT {job_text_columns} FROM jobs WHERE id = %s AND deleted_at IS NULL;

-- name: set_scrapyd_jobs
UPDATE jobs SET scrapyd_jobs = %s, updated_at = now() WHERE id = %s
RETURNING {job_columns};

-- A job whose crawler processes were never recorded: a submission that failed
-- half-way, or one a stopped API left (recovery). Ends it failed, with the
-- processes that were found.
-- name: fail_unscheduled
UPDATE jobs SET status = 'failed', error = %s, scrapyd_jobs = %s, updated_at = now(),
                finished_at = now()
WHERE id = %s AND status IN ('pending', 'running') AND scrapyd_jobs = '[]'::jsonb;

-- name: mark_cancelled
UPDATE jobs SET status = 'cancelled', close_reason = 'cancelled', error = %s,
                updated_at = now(), finished_at = now()
WHERE id = %s
RETURNING {job_columns};

-- name: job_state
SELECT owner_id, status, stats, error, close_reason FROM jobs
WHERE id = %s AND deleted_at IS NULL;

-- name: count_jobs_by_status
SELECT status, count(*) FROM jobs WHERE deleted_at IS NULL GROUP BY status;

-- name: list_jobs
-- The page's rows are chosen first and only they turn their documents into text;
-- they come out in the order the inner query sorted them.
SELECT {job_text_columns} FROM (
    SELECT {job_columns} FROM jobs
    WHERE deleted_at IS NULL
      AND (%(owner)s::bigint IS NULL OR owner_id = %(owner)s)
      AND (%(status)s::text IS NULL OR status = %(status)s)
      AND (%(spider)s::text IS NULL OR spider = %(spider)s)
      AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])
      AND (%(after_created)s::timestamptz IS NULL
           OR (created_at, id) < (%(after_created)s, %(after_id)s::uuid))
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s
) AS page
ORDER BY created_at DESC, id DESC;

-- name: list_pages
SELECT {page_columns} FROM pages
WHERE job_id = %(job)s
  AND (NOT %(errors_only)s OR status >= 400 OR status = 0 OR error IS NOT NULL)
  AND (%(status)s::int IS NULL OR status = %(status)s)
  AND (%(prefix)s::text IS NULL OR url LIKE %(prefix)s)
  AND (%(after_url)s::text IS NULL OR url > %(after_url)s)
ORDER BY url LIMIT %(limit)s;

-- name: list_links
SELECT s.url, t.url, l.count, l.anchor_text, l.nofollow
FROM links AS l
JOIN urls AS s ON s.job_id = l.job_id AND s.id = l.source_id
JOIN urls AS t ON t.job_id = l.job_id AND t.id = l.target_id
WHERE l.job_id = %(job)s
  AND (%(prefix)s::text IS NULL OR s.url LIKE %(prefix)s)
  AND (%(target_prefix)s::text IS NULL OR t.url LIKE %(target_prefix)s)
  AND (%(after_source)s::text IS NULL
       OR (s.url, t.url) > (%(after_source)s, %(after_target)s::text))
ORDER BY s.url, t.url LIMIT %(limit)s;

-- name: list_items
SELECT fingerprint, item_type, url, data, created_at FROM items
WHERE job_id = %(job)s
  AND (%(item_type)s::text IS NULL OR item_type = %(item_type)s)
  AND (%(prefix)s::text IS NULL OR url LIKE %(prefix)s)
  AND (%(after)s::text IS NULL OR fingerprint > %(after)s)
ORDER BY fingerprint LIMIT %(limit)s;

-- Recovery (jobapi.services.recovery): half-done jobs older than a grace period.
-- A job its crawlers ended (close_reason set) before its processes were recorded
-- (a short crawl that the killed API had scheduled) is looked at for a while too.
-- name: find_unscheduled
SELECT id, workers, status IN ('pending', 'running') AS live FROM jobs
WHERE scrapyd_jobs = '[]'::jsonb
  AND created_at < now() - make_interval(secs => %s)
  AND (status IN ('pending', 'running')
       OR (close_reason IS NOT NULL AND finished_at > now() - make_interval(secs => %s)))
ORDER BY created_at LIMIT %s;

-- name: find_active
SELECT id, scrapyd_jobs FROM jobs
WHERE status IN ('pending', 'running') AND scrapyd_jobs <> '[]'::jsonb
  AND updated_at < now() - make_interval(secs => %s)
ORDER BY created_at LIMIT %s;

-- name: record_scheduled
UPDATE jobs SET scrapyd_jobs = %s, updated_at = now()
WHERE id = %s AND scrapyd_jobs = '[]'::jsonb
  AND (status IN ('pending', 'running') OR close_reason IS NOT NULL);

-- name: fail_vanished
UPDATE jobs SET status = 'failed', error = %s, updated_at = now(), finished_at = now()
WHERE id = %s AND status IN ('pending', 'running')
  AND updated_at < now() - make_interval(secs => %s);
