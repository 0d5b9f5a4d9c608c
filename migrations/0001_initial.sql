-- The one schema every part of crawlgraph uses.
-- URLs are stored with the "C" collation so that a btree index serves both
-- equality and prefix (url LIKE 'https://example.org/%') lookups.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE
                  CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    password_hash text NOT NULL CHECK (password_hash <> ''),
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    owner_id        bigint NOT NULL REFERENCES users (id),
    spider          text NOT NULL CHECK (spider ~ '^[A-Za-z0-9_]{1,64}$'),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'paused', 'finished',
                                      'failed', 'cancelled')),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags            text[] NOT NULL DEFAULT '{}',
    priority        integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    workers         integer NOT NULL DEFAULT 1 CHECK (workers BETWEEN 1 AND 64),
    idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    scrapyd_jobs    jsonb NOT NULL DEFAULT '[]'::jsonb,
    stats           jsonb NOT NULL DEFAULT '{}'::jsonb,
    close_reason    text,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    UNIQUE (owner_id, idempotency_key),
    CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at)
);
-- Listing: a user's jobs newest first, with a (created_at, id) cursor.
CREATE INDEX jobs_owner_created_idx ON jobs (owner_id, created_at DESC, id DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_idx ON jobs (status);
CREATE INDEX jobs_spider_idx ON jobs (spider);
CREATE INDEX jobs_tags_idx ON jobs USING gin (tags);

CREATE TABLE pages (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    url          text COLLATE "C" NOT NULL CHECK (url ~ '^https?://'),
    final_url    text COLLATE "C" NOT NULL,
    status       integer NOT NULL CHECK (status BETWEEN 0 AND 999),
    content_type text,
    title        text,
    depth        integer NOT NULL DEFAULT 0 CHECK (depth >= 0),
    fetched_at   timestamptz NOT NULL,
    size         bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    content_hash text,
    elapsed_ms   integer CHECK (elapsed_ms >= 0),
    rendered     boolean NOT NULL DEFAULT false,
    error        text,
    PRIMARY KEY (job_id, url)
);
-- The primary key serves lookups and prefix filters by URL within a job.
CREATE INDEX pages_job_status_idx ON pages (job_id, status);

CREATE TABLE links (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    source_url  text COLLATE "C" NOT NULL CHECK (source_url ~ '^https?://'),
    target_url  text COLLATE "C" NOT NULL CHECK (target_url ~ '^https?://'),
    -- How many <a>/<area> elements on the source page point at the target:
    -- set (never added to) on conflict, so a replayed page stores nothing twice.
    count       integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    anchor_text text NOT NULL DEFAULT '',
    nofollow    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, source_url, target_url)
);
CREATE INDEX links_job_target_idx ON links (job_id, target_url);

CREATE TABLE items (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    fingerprint text NOT NULL CHECK (char_length(fingerprint) BETWEEN 1 AND 128),
    item_type   text NOT NULL,
    url         text COLLATE "C",
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, fingerprint)
);
CREATE INDEX items_job_type_idx ON items (job_id, item_type);

CREATE TABLE dead_letters (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('page', 'link', 'item')),
    -- The row as JSON text (NUL bytes escaped), kept as text because jsonb
    -- refuses some of the very inputs that end up here.
    payload    text NOT NULL,
    error      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_job_idx ON dead_letters (job_id, id);

CREATE TABLE graph_builds (
    id          uuid PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id),
    level       text NOT NULL CHECK (level IN ('page', 'host', 'domain')),
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics     text[] NOT NULL DEFAULT '{}',
    node_count  bigint CHECK (node_count >= 0),
    edge_count  bigint CHECK (edge_count >= 0),
    timings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker      text,
    heartbeat_at timestamptz,
    path        text,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX graph_builds_owner_created_idx ON graph_builds (owner_id, created_at DESC, id DESC);
-- The worker's queue: queued builds oldest first, and stale running builds.
CREATE INDEX graph_builds_queue_idx ON graph_builds (status, created_at);

-- A build reads the links of one job or several.
CREATE TABLE graph_build_jobs (
    build_id uuid NOT NULL REFERENCES graph_builds (id) ON DELETE CASCADE,
    job_id   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (build_id, job_id)
);
CREATE INDEX graph_build_jobs_job_idx ON graph_build_jobs (job_id);
