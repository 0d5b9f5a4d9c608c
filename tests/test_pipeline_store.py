"""PostgresStore: COPY staging + ON CONFLICT, idempotence, poison rows (real PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from core.migrate import load_migrations, upgrade
from crawler.items import Link, Page, Redirect
from crawler.pipelines.errors import StorageUnavailable
from crawler.pipelines.rows import RowError, to_row
from crawler.pipelines.store import PostgresStore


def make_job(database_url: str) -> str:
    job_id = str(uuid.uuid4())
    with psycopg.connect(database_url) as conn:
        user = conn.execute(
            "INSERT INTO users (username, password_hash) VALUES (%s, 'x') RETURNING id",
            (f"t{job_id[:8]}",),
        ).fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider) VALUES (%s, %s, 'follow')",
                     (job_id, user))
    return job_id


def page(url: str, **kw) -> Page:
    return Page(url=url, final_url=url, status=200, fetched_at=datetime.now(UTC), **kw)


def count(database_url: str, sql: str, *args) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_batch_is_stored_once_even_when_replayed(database_url: str) -> None:
    job = make_job(database_url)
    store = PostgresStore(database_url, job)
    rows = [to_row(page(f"http://a.test/{i}", title=f"t{i}", size=10)) for i in range(50)]
    rows += [to_row(Link(source_url="http://a.test/0", target_url=f"http://a.test/{i}",
                         anchor_text="x", count=2)) for i in range(50)]
    rows.append(to_row({"url": "http://a.test/0", "price": 3}))
    # The same page twice in one batch: the last one wins, no conflict error.
    rows.append(to_row(page("http://a.test/0", title="again")))
    assert store.write(rows).stored == len(rows)
    assert store.write(rows).stored == len(rows)  # a replayed batch
    store.close()
    assert count(database_url, "SELECT count(*) FROM pages WHERE job_id=%s", job) == 50
    assert count(database_url, "SELECT count(*) FROM links WHERE job_id=%s", job) == 50
    assert count(database_url, "SELECT sum(count) FROM links WHERE job_id=%s", job) == 100
    assert count(database_url, "SELECT count(*) FROM items WHERE job_id=%s", job) == 1
    with psycopg.connect(database_url) as conn:
        title = conn.execute("SELECT title FROM pages WHERE url='http://a.test/0'").fetchone()
        data = conn.execute("SELECT item_type, data FROM items").fetchone()
    assert title == ("again",)
    assert data == ("dict", {"url": "http://a.test/0", "price": 3})


@pytest.mark.parametrize(
    ("poison", "error"),
    [
        (Link(source_url="http://a.test/0", target_url="http://a.test/nul", anchor_text="a\x00b"),
         "0x00"),
        (Link(source_url="http://a.test/0", target_url="http://a.test/bad",
              anchor_text="bad \udcff encoding"), "UnicodeEncodeError"),
        # Refused by PostgreSQL in the merge, not in the COPY: jsonb has no \u0000.
        ({"url": "http://a.test/j", "text": "a\x00b"}, "UntranslatableCharacter"),
    ],
)
def test_poison_row_goes_to_dead_letters_and_the_rest_is_stored(
    database_url: str, poison, error: str
) -> None:
    job = make_job(database_url)
    store = PostgresStore(database_url, job)
    good = [to_row(Link(source_url="http://a.test/0", target_url=f"http://a.test/{i}"))
            for i in range(40)]
    rows = good[:17] + [to_row(poison)] + good[17:]
    result = store.write(rows)
    store.close()
    assert result.stored == 40
    assert len(result.dead) == 1
    assert count(database_url, "SELECT count(*) FROM links WHERE job_id=%s", job) == 40
    with psycopg.connect(database_url) as conn:
        dead = conn.execute(
            "SELECT job_id::text, kind, payload, error FROM dead_letters").fetchall()
    assert len(dead) == 1
    assert dead[0][0] == job and dead[0][1] == to_row(poison).kind
    assert error in dead[0][3]
    assert "http://a.test/" in dead[0][2]
    assert count(database_url, "SELECT count(*) FROM items WHERE job_id=%s", job) == 0


def test_a_page_whose_links_two_batches_carry_keeps_them_all(database_url: str) -> None:
    """A page's links are one row: the second batch adds to it, its values win."""
    job = make_job(database_url)
    store = PostgresStore(database_url, job)
    links = [Link(source_url="http://a.test/0", target_url=f"http://a.test/{i}",
                  anchor_text=f"first {i}") for i in range(30)]
    store.write([to_row(link) for link in links[:20]])
    again = [Link(source_url="http://a.test/0", target_url=f"http://a.test/{i}",
                  anchor_text=f"second {i}", count=3, nofollow=True) for i in range(15, 30)]
    store.write([to_row(link) for link in again])
    store.close()
    with psycopg.connect(database_url) as conn:
        stored = {row[0]: row[1:] for row in conn.execute(
            "SELECT target_url, anchor_text, count, nofollow FROM link_urls WHERE job_id = %s",
            (job,))}
        rows = conn.execute("SELECT count(*) FROM outlinks WHERE job_id = %s", (job,)).fetchone()
    assert rows == (1,)
    assert stored == {**{f"http://a.test/{i}": (f"first {i}", 1, False) for i in range(15)},
                      **{f"http://a.test/{i}": (f"second {i}", 3, True) for i in range(15, 30)}}


def test_a_url_whose_id_another_url_holds_is_refused_loudly(database_url: str) -> None:
    """Two URLs with one 64-bit id cannot be made on purpose, so the job's `urls` is
    given a row that holds the id of a URL the next batch links to."""
    job = make_job(database_url)
    taken = "http://a.test/taken"
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO urls (job_id, id, url) "
                     "VALUES (%s, hashtextextended(%s, 0), 'http://other.test/')", (job, taken))
    store = PostgresStore(database_url, job)
    rows = [to_row(Link(source_url="http://a.test/0", target_url=f"http://a.test/{i}"))
            for i in range(20)]
    rows.insert(9, to_row(Link(source_url="http://a.test/0", target_url=taken)))
    result = store.write(rows)
    store.close()
    assert result.stored == 20 and len(result.dead) == 1
    assert "URL id collision" in result.dead[0][2] and taken in result.dead[0][2]
    with psycopg.connect(database_url) as conn:
        stored = {row[0] for row in conn.execute(
            "SELECT target_url FROM link_urls WHERE job_id = %s", (job,))}
        assert stored == {f"http://a.test/{i}" for i in range(20)}
        dead = conn.execute("SELECT kind, error FROM dead_letters").fetchall()
    assert [kind for kind, _ in dead] == ["link"] and "share the id" in dead[0][1]


def test_invalid_items_are_refused_before_the_database() -> None:
    with pytest.raises(RowError, match=r"invalid link: .*https\?://.* at `\$\.source_url`"):
        to_row(Link(source_url="ftp://a.test/", target_url="http://a.test/"))
    with pytest.raises(RowError, match=r"invalid redirect: .* at `\$\.target_url`"):
        to_row(Redirect(url="http://a.test/", target_url="javascript:alert(1)"))
    with pytest.raises(RowError, match=r"invalid page: .* at `\$\.url`"):
        to_row(page("file:///etc/passwd"))
    with pytest.raises(RowError, match="invalid page"):
        to_row(Page(url="http://a.test/", final_url="http://a.test/", status=1000,
                    fetched_at=datetime.now(UTC)))
    with pytest.raises(RowError, match="invalid page"):
        to_row(page("http://a.test/", elapsed_ms=2**31))  # would wrap in a binary int4
    with pytest.raises(RowError, match="not an item"):
        to_row(object())


def test_unreachable_database_raises_storage_unavailable(database_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://x:y@127.0.0.1:{port}/db", str(uuid.uuid4()),
                          connect_timeout=2)
    with pytest.raises(StorageUnavailable):
        store.write([to_row(page("http://a.test/"))])


def test_a_batch_the_server_rolls_back_is_retried_on_the_same_connection(
        database_url: str) -> None:
    """A deadlock (SQLSTATE 40P01) is not a lost server: the connection, its staging
    tables and the store's memory of stored URLs stay for the retry."""
    job = make_job(database_url)
    with psycopg.connect(database_url) as conn:
        # A sequence is not transactional: the first page row fails, every later one passes.
        conn.execute("CREATE SEQUENCE cg_test_rollbacks")
        conn.execute("""
            CREATE FUNCTION cg_test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('cg_test_rollbacks') = 1 THEN
                    RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01';
                END IF;
                RETURN NEW;
            END $$""")
        conn.execute("CREATE TRIGGER cg_test_deadlock BEFORE INSERT ON pages "
                     "FOR EACH ROW EXECUTE FUNCTION cg_test_deadlock()")
    store = PostgresStore(database_url, job)
    store.write([to_row(Link(source_url="http://a.test/0", target_url="http://a.test/1"))])
    backend = store._conn.info.backend_pid
    rows = [to_row(page("http://a.test/0"))]
    with pytest.raises(StorageUnavailable, match="rolled the batch back"):
        store.write(rows)
    assert store._conn is not None and store._conn.info.backend_pid == backend
    assert store._known_urls == {"http://a.test/0", "http://a.test/1"}
    assert store.write(rows).stored == 1
    assert store._conn.info.backend_pid == backend
    store.close()
    assert count(database_url, "SELECT count(*) FROM pages WHERE job_id=%s", job) == 1


def test_a_page_stores_the_canonical_it_declares_now(database_url: str) -> None:
    job = make_job(database_url)
    store = PostgresStore(database_url, job)
    variant, main = "http://a.test/p?ref=home", "http://a.test/p"
    store.write([to_row(page(variant, canonical_url=main)), to_row(page(main))])
    # A re-crawl replaces it: a variant that dropped its canonical has none.
    store.write([to_row(page(variant))])
    store.write([to_row(page(main, canonical_url=main))])
    store.close()
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT url, canonical_url FROM pages WHERE job_id = %s",
                                 (job,)).fetchall())
    assert rows == {variant: None, main: main}
    # What no page may declare is refused before the database, the column's bound too.
    for bad in ("javascript:x", "http://a.test/" + "a" * 2048):
        with pytest.raises(RowError, match="canonical_url"):
            to_row(page(main, canonical_url=bad))


def test_the_canonical_migration_keeps_the_rows_of_older_crawls(database_url: str,
                                                                 tmp_path) -> None:
    base = database_url.rsplit("/", 1)[0]
    name = database_url.rsplit("/", 1)[1] + "_before_0011"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    for migration in load_migrations():
        if migration.version < 11:
            (tmp_path / migration.name).write_text(migration.sql)
    upgrade(url, tmp_path)
    job = make_job(url)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, discovered)"
                     " VALUES (%s, 'http://a.test/', 'http://a.test/', 200, now(), 'start')",
                     (job,))
        build = conn.execute("INSERT INTO graph_builds (id, owner_id, level) SELECT "
                             "gen_random_uuid(), owner_id, 'page' FROM jobs "
                             "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO graph_nodes (build_id, node_id, label) "
                     "VALUES (%s, 0, 'http://a.test/')", (build,))
    assert "0011_page_canonical.sql" in upgrade(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT url, discovered, canonical_url FROM pages").fetchall() == [
            ("http://a.test/", "start", None)]
        assert conn.execute("SELECT label, discovered, canonical FROM graph_nodes").fetchall() \
            == [("http://a.test/", None, None)]
        # The old page learns its canonical from a re-crawl; the bounds hold.
        store = PostgresStore(url, job)
        store.write([to_row(page("http://a.test/", canonical_url="http://a.test/home"))])
        store.close()
        assert conn.execute("SELECT discovered, canonical_url FROM pages").fetchall() == [
            ("start", "http://a.test/home")]
        for bad in ("ftp://a.test/", "http://a.test/" + "a" * 2048):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("UPDATE pages SET canonical_url = %s", (bad,))
            conn.rollback()
