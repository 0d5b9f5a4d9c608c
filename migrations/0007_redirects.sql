-- Redirect hops: every URL a crawl fetched that redirected, and where to.
--
-- `pages` has one row per request that reached the spider: the URL asked for
-- and the final URL. A redirect whose target the frontier already knew never
-- gets that far (the request it leads to is dropped as a duplicate), nor does
-- the middle of a chain; so each hop is a row here, written when Scrapy
-- follows it. Graph builds fold a redirecting URL into the page its chain
-- lands on (`fold_redirects`).
CREATE TABLE redirects (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    url        text COLLATE "C" NOT NULL CHECK (url ~ '^https?://'),
    target_url text COLLATE "C" NOT NULL CHECK (target_url ~ '^https?://'),
    -- 301, 302, 303, 307 or 308; NULL for a <meta http-equiv="refresh">.
    status     integer CHECK (status BETWEEN 0 AND 999),
    PRIMARY KEY (job_id, url)
);

ALTER TABLE dead_letters
    DROP CONSTRAINT dead_letters_kind_check,
    ADD CONSTRAINT dead_letters_kind_check
        CHECK (kind IN ('page', 'link', 'redirect', 'item'));
