-- The canonical URL a page declares (`<link rel="canonical" href>` in its
-- head, or an HTTP `Link: <...>; rel="canonical"` header), resolved against
-- the page and stored canonical like every URL; NULL when it declares none,
-- or one that is no http(s) URL, too long, or contradicted by another. Graph
-- builds fold a page into it with `fold_canonical`, and carry it as a node
-- attribute otherwise. NULL for the rows of crawls from before it.
ALTER TABLE pages
    ADD COLUMN canonical_url text COLLATE "C"
        CHECK (canonical_url ~ '^https?://' AND length(canonical_url) <= 2048);

-- Text attributes of a page graph's nodes, so that they are a query like the
-- metrics: how the crawl first reached the page (`pages.discovered`) and, in
-- a graph that does not fold canonicals, the canonical URL the page declares.
-- NULL at the host and domain levels and for builds from before them.
ALTER TABLE graph_nodes
    ADD COLUMN discovered text CHECK (discovered IN ('start', 'link', 'sitemap')),
    ADD COLUMN canonical  text COLLATE "C";
