-- How the crawl first reached each page: `start` (a start URL or a frontier
-- seed), `link` (a hyperlink of a fetched page) or `sitemap` (listed in one of
-- the site's sitemaps, `sitemaps: true`). A page found only through a sitemap
-- has no in-link: this column, not a made-up link, says where it came from.
-- NULL for the rows of crawls from before it.
ALTER TABLE pages
    ADD COLUMN discovered text CHECK (discovered IN ('start', 'link', 'sitemap'));
