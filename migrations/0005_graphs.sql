-- Graph builds: per-node metrics in Postgres, and what the build worker needs.
--
-- graph_nodes holds one row per node of a finished build, so that "the top 20
-- pages by PageRank" is a query, not a load of the graph file. A metric that
-- was not asked for stays NULL.

ALTER TABLE graph_builds
    ADD COLUMN options      jsonb   NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    ADD COLUMN step         text,
    -- Graph-level figures: density, reciprocity, component counts, the number
    -- of betweenness pivots, metrics skipped and why.
    ADD COLUMN summary      jsonb   NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at   timestamptz NOT NULL DEFAULT now();

CREATE TABLE graph_nodes (
    build_id         uuid    NOT NULL REFERENCES graph_builds (id) ON DELETE CASCADE,
    node_id          integer NOT NULL CHECK (node_id >= 0),
    label            text    COLLATE "C" NOT NULL,
    -- Page level: 1 when the page was fetched; host/domain level: pages folded in.
    pages            integer NOT NULL DEFAULT 1,
    crawled          integer NOT NULL DEFAULT 0,
    in_degree        integer,
    out_degree       integer,
    in_weight        bigint,
    out_weight       bigint,
    pagerank         double precision,
    hub              double precision,
    authority        double precision,
    betweenness      double precision,
    closeness        double precision,
    component        integer,
    strong_component integer,
    kcore            integer,
    community        integer,
    PRIMARY KEY (build_id, node_id)
);
CREATE INDEX graph_nodes_label_idx ON graph_nodes (build_id, label);
