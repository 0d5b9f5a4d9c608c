-- Webhooks (jobapi.services.webhooks) and their delivery (jobapi.services.webhooks_send).
-- jobapi.services.webhooks reads rows in the order of the column fragments.

-- fragment: webhook_columns
id, owner_id, schedule_id, url, events, created_at

-- fragment: delivery_columns
id, event_id, event, state, attempts, next_attempt_at, created_at, finished_at

-- name: insert_webhook
INSERT INTO webhooks (id, owner_id, schedule_id, url, secret, events)
VALUES (%(id)s, %(owner_id)s, %(schedule_id)s, %(url)s, %(secret)s, %(events)s)
RETURNING {webhook_columns};

-- name: webhook_by_id
SELECT {webhook_columns} FROM webhooks WHERE id = %s;

-- name: delete_webhook
DELETE FROM webhooks WHERE id = %s;

-- name: schedule_owner
SELECT owner_id FROM schedules WHERE id = %s;

-- name: list_webhooks
SELECT {webhook_columns} FROM webhooks
WHERE (%(owner)s::bigint IS NULL OR owner_id = %(owner)s)
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created)s, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC LIMIT %(limit)s;

-- name: list_deliveries
SELECT {delivery_columns} FROM webhook_deliveries
WHERE webhook_id = %(webhook)s AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: attempts_of
SELECT delivery_id, attempt, attempted_at, status, body, error, duration_ms
FROM webhook_attempts WHERE delivery_id = ANY (%s) ORDER BY delivery_id, attempt;

-- Delivery. The oldest due delivery no other sender holds; the caller keeps the
-- transaction (and the row lock) open while it calls the URL.
-- name: claim_delivery
SELECT d.id, d.event_id, d.event, d.data, d.attempts, d.created_at, w.url, w.secret
FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE d.state = 'pending' AND d.next_attempt_at <= now()
ORDER BY d.next_attempt_at LIMIT 1
FOR UPDATE OF d SKIP LOCKED;

-- name: record_attempt
INSERT INTO webhook_attempts (delivery_id, attempt, status, body, error, duration_ms)
VALUES (%(delivery)s, %(attempt)s, %(status)s, %(body)s, %(error)s, %(duration_ms)s);

-- name: settle_delivery
UPDATE webhook_deliveries SET attempts = %(attempt)s, state = %(state)s,
                              next_attempt_at = %(next_attempt_at)s,
                              finished_at = CASE WHEN %(state)s = 'pending' THEN NULL
                                                 ELSE now() END
WHERE id = %(delivery)s;
