-- Crawling decisions and events recorded per job (the site spider and its middlewares).

-- The robots decision ledger: every URL a crawl skipped because of robots.txt,
-- and why (a Disallow rule, or robots.txt unavailable: 5xx or unreachable).
CREATE TABLE robots_decisions (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    url           text COLLATE "C" NOT NULL CHECK (url ~ '^https?://'),
    host          text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('disallowed', 'unavailable')),
    robots_status integer CHECK (robots_status BETWEEN 0 AND 999),
    decided_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, url)
);

-- Things that happened to a host during a crawl: block signals (a CAPTCHA page,
-- a burst of 403s), downloads cut off by a size or time limit, refused targets.
CREATE TABLE crawl_events (
    id          bigserial PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    host        text NOT NULL,
    kind        text NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    url         text COLLATE "C",
    status      integer CHECK (status BETWEEN 0 AND 999),
    detail      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crawl_events_job_kind_idx ON crawl_events (job_id, kind);
