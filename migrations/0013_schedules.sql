-- Schedules: crawl jobs that recur on a cron expression or an interval.
--
-- A slot is one instant a schedule is due. schedule_runs has one row per slot
-- that a scheduler handled (a job submitted, or the slot skipped, missed or
-- refused, with the reason); its primary key (schedule_id, slot) is the claim:
-- the scheduler inserts it in the same transaction as the job it submits, so a
-- second scheduler process's insert of the same slot finds the row and fires
-- nothing. schedules.next_fire_at only says when to look next; it guards nothing.

CREATE TABLE schedules (
    id               uuid PRIMARY KEY,
    owner_id         bigint NOT NULL REFERENCES users (id),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    cron             text CHECK (char_length(cron) BETWEEN 1 AND 200),
    timezone         text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
    interval_seconds integer CHECK (interval_seconds BETWEEN 1 AND 31622400),
    -- Interval slots are anchor + k * interval_seconds: the same in every process.
    anchor           timestamptz NOT NULL,
    job              jsonb NOT NULL,
    overlap          text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
    catchup          text NOT NULL DEFAULT 'latest' CHECK (catchup IN ('latest', 'none')),
    enabled          boolean NOT NULL DEFAULT true,
    next_fire_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (interval_seconds IS NULL))
);
CREATE INDEX schedules_owner_created_idx ON schedules (owner_id, created_at DESC, id DESC);
CREATE INDEX schedules_created_idx ON schedules (created_at DESC, id DESC);
CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE enabled;

CREATE TABLE schedule_runs (
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    slot        timestamptz NOT NULL,
    outcome     text NOT NULL
                CHECK (outcome IN ('submitted', 'failed', 'skipped', 'missed', 'refused')),
    job_id      uuid,
    -- Earlier slots that no scheduler reached in time and that this run covers.
    missed      integer NOT NULL DEFAULT 0 CHECK (missed >= 0),
    reason      text,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, slot)
);

-- The jobs of one schedule form a series.
ALTER TABLE jobs
    ADD COLUMN schedule_id   uuid REFERENCES schedules (id) ON DELETE SET NULL,
    ADD COLUMN schedule_slot timestamptz;
CREATE INDEX jobs_schedule_idx ON jobs (schedule_id, created_at DESC)
    WHERE schedule_id IS NOT NULL;
