-- WARC files of a job (jobapi.services.warcs; rows written by crawler.middlewares.warc).

-- name: warc_list
SELECT name, node, worker, bytes, records, opened_at, closed_at
FROM warc_files WHERE job_id = %s ORDER BY name;

-- name: warc_get
SELECT node, closed_at FROM warc_files WHERE job_id = %s AND name = %s;
