-- Webhooks: a URL called when a job ends (finished, failed, cancelled) or a
-- graph build ends (done, failed).
--
-- webhook_deliveries is an outbox: a trigger on jobs and on graph_builds adds
-- one row per matching webhook in the same transaction as the status change,
-- so neither the crawlers nor the graph workers know about webhooks and no
-- event is lost if the sender dies. The sender holds a delivery's row lock
-- (FOR UPDATE SKIP LOCKED) while it calls the URL: a sender killed mid-call
-- leaves the row pending for the next one. webhook_attempts logs every call
-- and its answer.

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id),
    -- Set: the events of this schedule's jobs only. Null: all of the owner's.
    schedule_id uuid REFERENCES schedules (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    secret      text NOT NULL CHECK (char_length(secret) BETWEEN 32 AND 128),
    events      text[] NOT NULL CHECK (cardinality(events) >= 1 AND events <@ ARRAY[
                    'job.finished', 'job.failed', 'job.cancelled', 'graph.done', 'graph.failed']),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_created_idx ON webhooks (owner_id, created_at DESC, id DESC);
CREATE INDEX webhooks_created_idx ON webhooks (created_at DESC, id DESC);
CREATE INDEX webhooks_schedule_idx ON webhooks (schedule_id) WHERE schedule_id IS NOT NULL;

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The receiver's key to drop a repeat: a delivery is at least once.
    event_id        uuid NOT NULL DEFAULT gen_random_uuid(),
    event           text NOT NULL,
    data            jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status       integer CHECK (status BETWEEN 100 AND 999),
    -- What the receiver answered, bounded; or why there was no answer.
    body         text CHECK (char_length(body) <= 1000),
    error        text CHECK (char_length(error) <= 1000),
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION webhook_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('finished', 'failed', 'cancelled')
       AND NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO webhook_deliveries (webhook_id, event, data)
        SELECT w.id, 'job.' || NEW.status, jsonb_build_object(
                   'job_id', NEW.id, 'status', NEW.status, 'spider', NEW.spider,
                   'owner_id', NEW.owner_id, 'schedule_id', NEW.schedule_id,
                   'close_reason', NEW.close_reason, 'error', left(NEW.error, 500),
                   'finished_at', NEW.finished_at)
        FROM webhooks w
        WHERE ((w.schedule_id IS NULL AND w.owner_id = NEW.owner_id)
               OR w.schedule_id = NEW.schedule_id)
          AND 'job.' || NEW.status = ANY (w.events);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_webhook_events AFTER UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION webhook_job_event();

CREATE FUNCTION webhook_graph_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('done', 'failed') AND NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO webhook_deliveries (webhook_id, event, data)
        SELECT w.id, 'graph.' || NEW.status, jsonb_build_object(
                   'build_id', NEW.id, 'status', NEW.status, 'level', NEW.level,
                   'owner_id', NEW.owner_id, 'node_count', NEW.node_count,
                   'edge_count', NEW.edge_count, 'error', left(NEW.error, 500),
                   'finished_at', NEW.finished_at)
        FROM webhooks w
        WHERE w.schedule_id IS NULL AND w.owner_id = NEW.owner_id
          AND 'graph.' || NEW.status = ANY (w.events);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER graph_builds_webhook_events AFTER UPDATE OF status ON graph_builds
    FOR EACH ROW EXECUTE FUNCTION webhook_graph_event();
