-- Recrawls (`crawler.middlewares.conditional`). A page keeps the validators
-- its server sent (`ETag`, `Last-Modified`, bounded: hostile headers) so that
-- the next crawl of a series can ask for it conditionally, and how it compares
-- with the crawl the job recrawls: `new` (not in that crawl), `changed` (its
-- content hash differs), `unchanged` (a 304, or the same hash). NULL for a
-- job that recrawls nothing and for rows from before. A page of the previous
-- crawl the recrawl did not reach is `gone`: that is derived (a page of
-- `recrawl_of` with no row in the recrawl), never a row of its own, so the
-- recrawl's pages and graph are those of a fresh crawl.
ALTER TABLE pages
    ADD COLUMN etag text CHECK (length(etag) <= 512),
    ADD COLUMN last_modified text CHECK (length(last_modified) <= 64),
    ADD COLUMN change text CHECK (change IN ('new', 'changed', 'unchanged'));

-- The job a recrawl compares with and takes its validators from: a job option
-- (`recrawl_of`) or, for a schedule's fire, the series' previous finished job.
ALTER TABLE jobs
    ADD COLUMN recrawl_of uuid REFERENCES jobs (id) ON DELETE SET NULL;
