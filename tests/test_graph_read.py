"""The graph read's nodes (`graphs.read`): `urls` and the page, redirect and canonical
rows merged by id, across jobs, with two URLs of one id refused."""

from __future__ import annotations

import psycopg
import pytest

from graphs.errors import GraphBuildFailed
from graphs.read import DISCOVERY, read_links
from tests.graphdata import add_links, add_pages, make_job, make_user


def _nodes(table) -> dict[str, tuple[int, str]]:
    """URL: (status, discovery) of each node; a URL must be one node."""
    assert len(set(table.urls)) == len(table.urls)
    return {url: (int(status), DISCOVERY[code]) for url, status, code in
            zip(table.urls, table.status.tolist(), table.discovered.tolist(), strict=True)}


def _links(table) -> set[tuple[str, str, int]]:
    return {(table.urls[s], table.urls[t], c) for s, t, c in
            zip(table.source.tolist(), table.target.tolist(), table.count.tolist(), strict=True)}


def _id(conn: psycopg.Connection, url: str) -> int:
    return conn.execute("SELECT hashtextextended(%s, 0)", (url,)).fetchone()[0]


def test_jobs_that_share_urls_read_each_url_as_one_node(database_url):
    a, b, c, d = "http://a.test/", "http://b.test/", "http://c.test/", "http://d.test/"
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        first, second = make_job(conn, owner), make_job(conn, owner)
        add_pages(conn, first, [a, b], status=200)
        add_pages(conn, second, [a], status=404)
        add_pages(conn, second, [d], status=500)  # a page of no link, in no `urls` row
        conn.execute("UPDATE pages SET discovered = 'sitemap' WHERE job_id = %s", (second,))
        conn.execute("UPDATE pages SET discovered = 'link' WHERE job_id = %s AND url = %s",
                     (first, a))
        add_links(conn, first, [(a, b, 1, False), (b, c, 2, False)])
        add_links(conn, second, [(a, b, 3, False), (a, c, 1, True)])
    table = read_links(database_url, [first, second])
    assert _nodes(table) == {a: (404, "link"), b: (200, ""), c: (-1, ""),
                             d: (500, "sitemap")}
    assert sorted(_links(table)) == sorted({(a, b, 1), (b, c, 2), (a, b, 3), (a, c, 1)})
    assert table.link_count == 4 and not table.unique_pairs
    alone = read_links(database_url, [second])
    assert _nodes(alone) == {a: (404, "sitemap"), b: (-1, ""), c: (-1, ""), d: (500, "sitemap")}


def test_redirect_ends_and_canonicals_without_urls_rows_are_nodes(database_url):
    home, old, new, canon = ("http://a.test/", "http://a.test/old", "http://a.test/new",
                             "http://a.test/canon")
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, [home, new])
        conn.execute("INSERT INTO redirects (job_id, url, target_url, status) "
                     "VALUES (%s, %s, %s, 301)", (job, old, new))
        conn.execute("UPDATE pages SET canonical_url = %s WHERE url = %s", (canon, new))
        add_links(conn, job, [(home, old, 1, False)])
    table = read_links(database_url, [job])
    assert _nodes(table) == {home: (200, ""), old: (301, ""), new: (200, ""), canon: (-1, "")}
    hops = {(table.urls[s], table.urls[t]) for s, t in
            zip(table.redirect_source.tolist(), table.redirect_target.tolist(), strict=True)}
    canonicals = {(table.urls[s], table.urls[t]) for s, t in
                  zip(table.canonical_source.tolist(), table.canonical_target.tolist(),
                      strict=True)}
    assert hops == {(old, new)} and canonicals == {(new, canon)}


@pytest.mark.parametrize("newline", [False, True])
def test_a_page_whose_id_a_urls_row_holds_for_another_url_fails_the_read(database_url,
                                                                         newline):
    # Two URLs with one 64-bit id cannot be made on purpose: a `urls` row that holds
    # the id of a page's URL for another URL stands for them (with a newline, the
    # nodes are read as rows and must be refused the same).
    page = "http://b.test/\nx" if newline else "http://b.test/"
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_links(conn, job, [("http://a.test/", "http://c.test/", 1, False)])
        add_pages(conn, job, [page])
        conn.execute("INSERT INTO urls (job_id, id, url) VALUES (%s, %s, 'http://other.test/')",
                     (job, _id(conn, page)))
    with pytest.raises(GraphBuildFailed, match="share one 64-bit id"):
        read_links(database_url, [job])


def test_two_jobs_holding_one_id_for_two_urls_fail_the_read(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        first, second = make_job(conn, owner), make_job(conn, owner)
        add_links(conn, first, [("http://a.test/", "http://b.test/", 1, False)])
        conn.execute("INSERT INTO urls (job_id, id, url) VALUES (%s, %s, 'http://other.test/')",
                     (second, _id(conn, "http://b.test/")))
    assert read_links(database_url, [first]).node_count == 2
    with pytest.raises(GraphBuildFailed, match="share one 64-bit id"):
        read_links(database_url, [first, second])


def test_a_page_url_with_a_newline_is_read_as_rows(database_url):
    odd = "http://a.test/x\ny\\z\tw"
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, ["http://a.test/", odd], status=203)
        add_links(conn, job, [("http://a.test/", "http://b.test/", 1, False)])
    table = read_links(database_url, [job])
    assert "read_nodes_rows" in table.timings
    assert _nodes(table) == {"http://a.test/": (203, ""), odd: (203, ""),
                             "http://b.test/": (-1, "")}


def test_a_link_target_missing_from_the_nodes_fails_the_read(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_links(conn, job, [("http://a.test/", "http://b.test/", 1, False)])
        conn.execute("DELETE FROM urls WHERE job_id = %s AND url = 'http://b.test/'", (job,))
    with pytest.raises(GraphBuildFailed, match="missing from the node list"):
        read_links(database_url, [job])


def test_a_link_end_with_no_urls_row_but_a_page_is_matched_among_all_nodes(database_url):
    # The links are matched in `urls` first; an end missing there (a database
    # written by hand) is looked up among every node instead.
    a, b, c = "http://a.test/", "http://b.test/", "http://c.test/"
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, [b, "http://alone.test/"])
        add_links(conn, job, [(a, b, 2, False), (b, c, 1, False)])
        conn.execute("DELETE FROM urls WHERE job_id = %s AND url = %s", (job, b))
    table = read_links(database_url, [job])
    assert _links(table) == {(a, b, 2), (b, c, 1)}
    assert _nodes(table) == {a: (-1, ""), b: (200, ""), c: (-1, ""),
                             "http://alone.test/": (200, "")}


def test_the_links_stream_comes_in_rows_by_source_so_no_row_nears_the_1_gb_limit(
        database_url):
    """One COPY row per read failed above about 80 million links (PostgreSQL builds a
    row in one buffer of at most 1 GB); the links come in up to 64 rows by source id."""
    from graphs.copydecode import binary_rows
    from graphs.readsql import EDGES_COPY, SET_NO_SORT

    pages = [f"http://a.test/{i}" for i in range(300)]
    links = [(pages[i], pages[(i * 7 + 1) % 300], 1 + i % 3, i % 5 == 0) for i in range(300)]
    links += [(pages[i], pages[0], 1, False) for i in range(1, 300)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, pages, status=200)
        add_links(conn, job, links)
        with conn.transaction():
            conn.execute(SET_NO_SORT)
            buf = bytearray()
            with conn.cursor() as cur, cur.copy(EDGES_COPY, {"jobs": [job]}) as copy:
                for chunk in copy:
                    buf += chunk
        groups = {_id(conn, source) & 63 for source, _, _, _ in links}
    assert len(binary_rows(buf)) == len(groups) > 32
    table = read_links(database_url, [job])
    assert _links(table) == {(s, t, c) for s, t, c, _ in links}
    assert {(table.urls[s], table.urls[t]) for s, t, f in zip(
        table.source.tolist(), table.target.tolist(), table.nofollow.tolist(), strict=True)
        if f} == {(s, t) for s, t, _, f in links if f}
