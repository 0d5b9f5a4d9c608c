-- Schedules (jobapi.services.schedules) and their firing (jobapi.services.schedules_fire).
-- The column list is written once (schedule_columns);
-- jobapi.services.schedules.schedule_from_row reads rows in that order.

-- fragment: schedule_columns
id, owner_id, name, cron, timezone, interval_seconds, anchor, job, overlap, catchup, enabled,
next_fire_at, created_at, updated_at, keep_last

-- fragment: run_columns
slot, outcome, job_id, missed, reason, handled_at

-- name: insert_schedule
INSERT INTO schedules (id, owner_id, name, cron, timezone, interval_seconds, anchor, job,
                       overlap, catchup, enabled, next_fire_at, keep_last)
VALUES (%(id)s, %(owner_id)s, %(name)s, %(cron)s, %(timezone)s, %(interval_seconds)s,
        %(anchor)s, %(job)s, %(overlap)s, %(catchup)s, %(enabled)s, %(next_fire_at)s,
        %(keep_last)s)
RETURNING {schedule_columns};

-- name: schedule_by_id
SELECT {schedule_columns} FROM schedules WHERE id = %s;

-- name: update_schedule
UPDATE schedules SET name = %(name)s, cron = %(cron)s, timezone = %(timezone)s,
                     interval_seconds = %(interval_seconds)s, anchor = %(anchor)s,
                     job = %(job)s, overlap = %(overlap)s, catchup = %(catchup)s,
                     enabled = %(enabled)s, keep_last = %(keep_last)s,
                     -- Kept unless the timing or the state changed: a scheduler may
                     -- have moved it since this request read it.
                     next_fire_at = CASE WHEN %(retime)s THEN %(next_fire_at)s::timestamptz
                                         ELSE next_fire_at END,
                     updated_at = now()
WHERE id = %(id)s
RETURNING {schedule_columns};

-- name: delete_schedule
DELETE FROM schedules WHERE id = %s;

-- name: list_schedules
SELECT {schedule_columns} FROM schedules
WHERE (%(owner)s::bigint IS NULL OR owner_id = %(owner)s)
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created)s, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC LIMIT %(limit)s;

-- name: last_runs
SELECT {run_columns} FROM schedule_runs WHERE schedule_id = %s
ORDER BY slot DESC LIMIT %s;

-- name: list_runs
SELECT {run_columns} FROM schedule_runs
WHERE schedule_id = %(schedule)s
  AND (%(before)s::timestamptz IS NULL OR slot < %(before)s)
ORDER BY slot DESC LIMIT %(limit)s;

-- Firing. The schedules whose next slot is due, oldest first.
-- name: due_schedules
SELECT {schedule_columns} FROM schedules
WHERE enabled AND next_fire_at <= %(now)s
ORDER BY next_fire_at LIMIT %(limit)s;

-- The claim: one row per (schedule, slot). A second process's insert of the
-- same slot waits for the first one's transaction, then inserts nothing.
-- name: claim_slot
INSERT INTO schedule_runs (schedule_id, slot, outcome, missed, reason)
VALUES (%(schedule)s, %(slot)s, %(outcome)s, %(missed)s, %(reason)s)
ON CONFLICT DO NOTHING
RETURNING slot;

-- name: settle_run
UPDATE schedule_runs SET outcome = %(outcome)s, job_id = %(job)s, reason = %(reason)s,
                         handled_at = now()
WHERE schedule_id = %(schedule)s AND slot = %(slot)s;

-- Only from the value this pass read: a pass that lost the claim moves nothing.
-- name: advance_schedule
UPDATE schedules SET next_fire_at = %(next)s
WHERE id = %(schedule)s AND next_fire_at = %(due)s;

-- name: mark_job_scheduled
UPDATE jobs SET schedule_id = %(schedule)s, schedule_slot = %(slot)s WHERE id = %(job)s;

-- The job a fire recrawls: the series' newest finished job.
-- name: previous_finished_job
SELECT id FROM jobs WHERE schedule_id = %s AND status = 'finished' AND deleted_at IS NULL
ORDER BY schedule_slot DESC LIMIT 1;

-- The newest job of the schedule that has not ended (overlap: skip).
-- name: active_job_of_schedule
SELECT id, status FROM jobs
WHERE schedule_id = %s AND status IN ('pending', 'running', 'paused')
ORDER BY created_at DESC LIMIT 1;

-- name: schedule_owner_user
SELECT id, username, role, disabled FROM users WHERE id = %s;
