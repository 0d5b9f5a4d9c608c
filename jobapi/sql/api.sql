-- Queries of the job API, loaded by name with jobapi.sql.QUERIES["name"].
-- Every value is a parameter; the column lists match jobapi.services.jobs.job_from_row
-- and jobapi.users._user.

-- name: insert_job
INSERT INTO jobs (id, owner_id, spider, params, settings, tags, priority, workers,
                  idempotency_key)
VALUES (%(id)s, %(owner_id)s, %(spider)s, %(params)s, %(settings)s, %(tags)s, %(priority)s,
        %(workers)s, %(key)s)
ON CONFLICT (owner_id, idempotency_key) DO NOTHING
RETURNING id, owner_id, spider, status, params, settings, tags, priority, workers,
          scrapyd_jobs, stats, close_reason, error, created_at, updated_at, started_at,
          finished_at;

-- name: job_by_key
SELECT id, owner_id, spider, status, params, settings, tags, priority, workers, scrapyd_jobs,
       stats, close_reason, error, created_at, updated_at, started_at, finished_at
FROM jobs WHERE owner_id = %s AND idempotency_key = %s;

-- name: job_by_id
SELECT id, owner_id, spider, status, params, settings, tags, priority, workers, scrapyd_jobs,
       stats, close_reason, error, created_at, updated_at, started_at, finished_at
FROM jobs WHERE id = %s;

-- name: set_scrapyd_jobs
UPDATE jobs SET scrapyd_jobs = %s, updated_at = now() WHERE id = %s
RETURNING id, owner_id, spider, status, params, settings, tags, priority, workers,
          scrapyd_jobs, stats, close_reason, error, created_at, updated_at, started_at,
          finished_at;

-- name: mark_failed
UPDATE jobs SET status = 'failed', error = %s, scrapyd_jobs = %s, updated_at = now(),
                finished_at = now()
WHERE id = %s AND status IN ('pending', 'running', 'paused');

-- name: mark_cancelled
UPDATE jobs SET status = 'cancelled', close_reason = 'cancelled', error = %s,
                updated_at = now(), finished_at = now()
WHERE id = %s
RETURNING id, owner_id, spider, status, params, settings, tags, priority, workers,
          scrapyd_jobs, stats, close_reason, error, created_at, updated_at, started_at,
          finished_at;

-- name: job_state
SELECT owner_id, status, stats, error, close_reason FROM jobs WHERE id = %s;

-- name: count_jobs_by_status
SELECT status, count(*) FROM jobs GROUP BY status;

-- name: user_for_login
SELECT id, username, password_hash, disabled FROM users WHERE username = %s;

-- name: user_for_token
SELECT id, username, role, disabled FROM users WHERE id = %s;

-- name: insert_user
INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s)
ON CONFLICT (username) DO NOTHING
RETURNING id, username, role, disabled, created_at, updated_at;

-- name: list_users
SELECT id, username, role, disabled, created_at, updated_at FROM users ORDER BY id;

-- name: user_by_id
SELECT id, username, role, disabled, created_at, updated_at FROM users WHERE id = %s;

-- name: update_user
UPDATE users
SET password_hash = coalesce(%(password_hash)s, password_hash),
    role = coalesce(%(role)s, role),
    disabled = coalesce(%(disabled)s, disabled),
    updated_at = now()
WHERE id = %(id)s
RETURNING id, username, role, disabled, created_at, updated_at;
