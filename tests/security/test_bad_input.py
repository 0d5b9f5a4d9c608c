"""Scenario 16: bad input is a 4xx with a clear message, never a 5xx.

Every field of every request body (read from the app's OpenAPI document, so a
new field is covered too) gets a wrong type, a NUL byte, a 10,000-character
URL and invalid UTF-8; every query and path parameter gets the same; whole
bodies come malformed, in the wrong type, huge and deeply nested. Each answer
is a 4xx in the one error shape, and a 422 names the field. schemathesis
fuzzes the API from the same document in tests/test_api_schemathesis.py.

The pipeline's validators (`crawler.pipelines.rows.to_row`, then the store)
get hypothesis-generated items against the real PostgreSQL: each item is
stored or dead-lettered, and nothing raises.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from crawler.items import Link, Page
from crawler.pipelines.rows import Row, RowError, to_row
from crawler.pipelines.store import PostgresStore
from graphs.worker import Worker, WorkerConfig
from jobapi.ratelimit import RateLimits
from tests.api_fixtures import assert_error, login, make_client
from tests.security.routetable import fill
from tests.test_api_jobs import insert_job, insert_pages

pytest_plugins = ["tests.api_fixtures"]

LONG_URL = "https://example.org/" + "a" * 10_000
RAW = "@@raw@@"
INVALID_UTF8 = b"\xff\xfe\xc3\x28 \xed\xa0\x80"
# operationId -> (who calls it, a body that is valid but does nothing lasting).
BODIES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "createToken": (None, {"username": "alice", "password": "not-the-password"}),
    # A private start URL: whatever else passes, the submission stops at the guard.
    "createJob": ("alice", {"start_urls": ["http://10.0.0.1/"]}),
    "createUser": ("root", {"username": "fresh", "password": "a long passphrase"}),
    "updateUser": ("root", {"disabled": False}),
    "createGraphBuild": ("alice", {"level": "page"}),
    "createSchedule": ("alice", {"name": "s", "cron": "0 3 * * *",
                                 "job": {"start_urls": ["http://10.0.0.1/"]}}),
    "updateSchedule": ("alice", {"name": "renamed"}),
    "createWebhook": ("alice", {"url": "http://10.0.0.1/hook"}),
}


@pytest.fixture
def api(api_settings, users, database_url) -> Iterator[dict[str, Any]]:
    """A client without rate limits, tokens, and ids for every path parameter."""
    job = insert_job(database_url, users["alice"], status="finished")
    insert_pages(database_url, job, [("https://a.example/", 200), ("https://a.example/b", 404)])
    with make_client(api_settings, rate_limits=RateLimits.unlimited()) as client:
        alice, root = login(client, "alice"), login(client, "root")
        build = client.post(f"/api/v1/jobs/{job}/graphs", json={"level": "page"}, headers=alice)
        assert build.status_code == 202, build.text
        Worker(api_settings.database_url, api_settings.home,
               WorkerConfig(poll_seconds=0.1)).run(once=True)
        yield {"client": client, "headers": {"alice": alice, "root": root, None: {}},
               "ids": {"job_id": job, "build_id": build.json()["id"], "user_id": users["bob"],
                        "schedule_id": uuid.uuid4()},
               "doc": client.get("/schema/openapi.json").json()}


def _operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                yield method.upper(), path, op


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema or "allOf" in schema:
        ref = schema["$ref"] if "$ref" in schema else schema["allOf"][0]["$ref"]
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _shaped(schema: dict, value: Any) -> Any:
    """`value` where the field holds it: alone, as a list element, or as a map's key and value."""
    if schema.get("type") == "array":
        return [value]
    if schema.get("type") == "object" and isinstance(value, str):
        return {value: value}
    return value


def _mutations(schema: dict) -> list[tuple[str, Any]]:
    return [
        ("wrong type (object)", {"nested": {"deep": [1]}}),
        ("wrong type (list of lists)", [[1]]),
        ("NUL byte", _shaped(schema, "a\x00b")),
        ("10,000-character URL", _shaped(schema, LONG_URL)),
        ("invalid UTF-8", _shaped(schema, RAW)),
    ]


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode().replace(f'"{RAW}"'.encode(), b'"' + INVALID_UTF8 + b'"')


def _collect(failures: list[str], response: Any, what: str, field: str | None = None) -> None:
    """Note `what` in `failures` unless the answer is a clear 4xx (a 422 naming `field`)."""
    if not 400 <= response.status_code < 500:
        failures.append(f"{what}: {response.status_code} {response.text[:200]}")
        return
    error = assert_error(response, response.status_code)
    if field is not None and response.status_code == 422:
        named = (error["field"] or "") + " " + error["message"]
        if field.rstrip("s") not in named:  # "Unknown metric: ..." names `metrics`
            failures.append(f"{what}: the 422 does not name the field: {error}")


@pytest.mark.scenario(16, done="every field of every JSON body (from the OpenAPI document): "
                               "wrong types, a NUL byte, a 10,000-char URL, invalid UTF-8",
                      checked="each answer is a 4xx in the error shape, a 422 names the field; "
                              "never a 5xx")
def test_every_body_field_with_bad_values_is_a_clear_4xx(api):
    client: TestClient = api["client"]
    doc = api["doc"]
    tried, failures = 0, []
    for method, path, op in _operations(doc):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        assert op["operationId"] in BODIES, f"new body-taking route: add it to BODIES: {path}"
        who, base = BODIES[op["operationId"]]
        headers = {**api["headers"][who], "content-type": "application/json"}
        url = fill(path, api["ids"])
        schema = _resolve(doc, content["application/json"]["schema"])
        for field, field_schema in schema["properties"].items():
            field_schema = _resolve(doc, field_schema)
            for what, value in _mutations(field_schema):
                body = {**base, field: value}
                response = client.request(method, url, content=_encode(body), headers=headers)
                _collect(failures, response, f"{method} {path} {field}: {what}", field)
                tried += 1
    assert tried >= 5 * 25, tried
    assert not failures, "\n".join(failures)


MALFORMED: list[tuple[str, bytes]] = [
    ("truncated", b'{"start_urls": ['),
    ("trailing garbage", b'{"start_urls": ["http://10.0.0.1/"]} and more'),
    ("NaN", b'{"start_urls": ["http://10.0.0.1/"], "max_pages": NaN}'),
    ("1e999", b'{"start_urls": ["http://10.0.0.1/"], "max_pages": 1e999}'),
    ("a 5,000-digit number", b'{"start_urls": ["http://10.0.0.1/"], "max_pages": 1'
                             + b"0" * 5000 + b"}"),
    ("100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000),
    ("50,000 nested objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("null", b"null"), ("a string", b'"start_urls"'), ("a list", b"[]"), ("empty", b""),
    ("a BOM and invalid UTF-8", b"\xef\xbb\xbf\xff\xfe{}"),
    ("duplicate keys", b'{"start_urls": ["http://10.0.0.1/"], "start_urls": 5}'),
    ("a NUL outside strings", b'{"start_urls":\x00["http://10.0.0.1/"]}'),
    ("UTF-16", '{"start_urls": ["http://10.0.0.1/"]}'.encode("utf-16")),
]


@pytest.mark.scenario(16, done="whole bodies to every body-taking route: malformed JSON, "
                               "NaN, huge numbers, deep nesting, wrong top-level types, wrong "
                               "content types, 5 MB bodies (plain and chunked)",
                      checked="each a 4xx in the error shape (413 for the huge ones); "
                              "never a 5xx")
def test_malformed_and_huge_bodies_are_a_clear_4xx(api):
    client: TestClient = api["client"]
    failures: list[str] = []
    for method, path, op in _operations(api["doc"]):
        if "requestBody" not in op:
            continue
        who, _ = BODIES[op["operationId"]]
        url = fill(path, api["ids"])
        auth = api["headers"][who]
        for what, raw in MALFORMED:
            response = client.request(method, url, content=raw,
                                      headers={**auth, "content-type": "application/json"})
            _collect(failures, response, f"{method} {path}: {what}")
        for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x",
                      "application/x-www-form-urlencoded; charset=utf-16"):
            response = client.request(method, url, content=b"start_urls=\xff\x00",
                                      headers={**auth, "content-type": ctype})
            _collect(failures, response, f"{method} {path}: {ctype}")
        huge = b'{"start_urls": ["' + b"a" * (5 * 1024 * 1024) + b'"]}'
        response = client.request(method, url, content=huge,
                                  headers={**auth, "content-type": "application/json"})
        assert_error(response, 413)
        chunks = (huge[i:i + 65536] for i in range(0, len(huge), 65536))
        response = client.request(method, url, content=chunks,
                                  headers={**auth, "content-type": "application/json"})
        assert_error(response, 413)
    assert not failures, "\n".join(failures)


@pytest.mark.scenario(16, done="every query and path parameter of every route: a NUL byte, "
                               "invalid UTF-8, 10,000 characters, a wrong type; bad header bytes",
                      checked="each a 4xx in the error shape (or a 200 that ignores nothing "
                              "it should refuse); never a 5xx")
def test_every_parameter_with_bad_values_is_never_a_5xx(api):
    client: TestClient = api["client"]
    tried, failures = 0, []
    for method, path, op in _operations(api["doc"]):
        if "requestBody" in op:
            who, body = BODIES[op["operationId"]]
        else:
            who, body = ("root" if "/users" in path else "alice"), None
        auth = api["headers"][who]
        url = fill(path, api["ids"])
        for param in op.get("parameters", []):
            name, where = param["name"], param["in"]
            for what, value in (("NUL byte", "a%00b"), ("invalid UTF-8", "%FF%FE%C3%28"),
                                ("10,000 characters", "a" * 10_000), ("wrong type", "-1.5e9x")):
                target, headers = url, dict(auth)
                if where == "query":
                    target = f"{url}?{name}={value}"
                elif where == "path":
                    target = fill(path, {**api["ids"], name: value})
                elif where == "header":
                    headers[name] = value.replace("%00", "\t").replace(
                        "%FF%FE%C3%28", "\xff\xfe").encode("latin-1")
                response = client.request(method, target, json=body, headers=headers)
                tried += 1
                if response.status_code >= 500:
                    failures.append(f"{method} {path} {name}: {what}: {response.status_code}")
                elif response.status_code >= 400:
                    assert_error(response, response.status_code)
                elif where != "header" and what in ("NUL byte", "invalid UTF-8"):
                    # Long or odd text may be a fine value (a filter matching nothing);
                    # a NUL or invalid UTF-8 never is.
                    failures.append(f"{method} {path} {name}: {what}: {response.status_code}")
        for header in (b"Bearer \xff\xfe", b"Basic \x80abc", b"\xc3\x28"):
            response = client.request(method, url, json=body,
                                      headers={"Authorization": header, "X-Request-ID": header})
            if response.status_code >= 500:
                failures.append(f"{method} {path} Authorization {header!r}: "
                                f"{response.status_code}")
    assert tried >= 40, tried
    assert not failures, "\n".join(failures)


# --- the pipeline's validators, with hypothesis ---------------------------------------------

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
HOSTILE_TEXT = st.one_of(
    ANY_TEXT,
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff x", "\ufeff", "é" * 3000,
                     "x" * 100_000]),
)
URLISH = st.one_of(
    st.builds(lambda s, r: f"{s}://{r}", st.sampled_from(["http", "https", "HTTP", "ftp"]),
              ANY_TEXT),
    HOSTILE_TEXT,
)
WIDE_INT = st.one_of(st.integers(-(2**70), 2**70),
                     st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63]))
DATES = st.one_of(st.datetimes(timezones=st.just(UTC)), st.datetimes())
PAGES = st.builds(
    Page, url=URLISH, final_url=HOSTILE_TEXT, status=WIDE_INT, fetched_at=DATES,
    content_type=st.none() | HOSTILE_TEXT, title=st.none() | HOSTILE_TEXT, depth=WIDE_INT,
    size=WIDE_INT, content_hash=st.none() | HOSTILE_TEXT, elapsed_ms=st.none() | WIDE_INT,
    rendered=st.booleans(), error=st.none() | HOSTILE_TEXT,
)
LINKS = st.builds(Link, source_url=URLISH, target_url=URLISH, anchor_text=HOSTILE_TEXT,
                  nofollow=st.booleans(), count=WIDE_INT)
JSONISH = st.recursive(
    st.none() | st.booleans() | WIDE_INT | st.floats() | HOSTILE_TEXT | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12,
)
OTHER_ITEMS = st.dictionaries(HOSTILE_TEXT, JSONISH, max_size=5)


def _fixed_page(**changes: Any) -> Page:
    base = dict(url="https://a.example/", final_url="https://a.example/", status=200,
                fetched_at=datetime.now(UTC))
    return Page(**{**base, **changes})


@pytest.mark.scenario(16, done="hypothesis: Page, Link and other items with hostile text (NUL, "
                               "lone surrogates, 100k chars), out-of-range numbers, naive dates, "
                               "non-JSON values, through to_row",
                      checked="each becomes a row or a RowError (for dead_letters), never "
                              "another exception")
@settings(max_examples=400, deadline=None, database=None)
@given(item=st.one_of(PAGES, LINKS, OTHER_ITEMS))
@example(item=_fixed_page(title="a\x00b"))
@example(item=_fixed_page(status=2**40))
@example(item={"k": float("nan"), "b": b"\xff"})
def test_to_row_validates_without_crashing(item):
    try:
        row = to_row(item)
    except RowError as exc:
        assert exc.kind in ("page", "link", "item") and exc.payload
        json.loads(exc.payload)  # the dead-letter payload is JSON text
        return
    assert isinstance(row, Row) and row.kind in ("page", "link", "item")


@pytest.mark.scenario(16, done="hypothesis: hostile Page, Link and other items through to_row "
                               "and the PostgreSQL store",
                      checked="each is stored or in dead_letters with its reason; the store "
                              "never raises")
def test_hostile_items_are_stored_or_dead_lettered(database_url, users):
    job_id = str(insert_job(database_url, users["alice"]))
    store = PostgresStore(database_url, job_id)
    seen = {"stored": 0, "dead": 0}

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(item=st.one_of(PAGES, LINKS, OTHER_ITEMS))
    @example(item=_fixed_page(url="https://a.example/nul", title="a\x00b"))
    @example(item=_fixed_page(url="https://a.example/sur", title="\ud800"))
    @example(item=Link(source_url="https://a.example/", target_url="https://a.example/" +
                       "x" * 100_000))
    # Too big for the links index even compressed (a hostile page's megabyte href).
    @example(item=Link(source_url="https://a.example/", target_url="https://a.example/" +
                       "".join(f"{i * 7919 % 10007:x}" for i in range(10_000))))
    def check(item: Any) -> None:
        try:
            rows, dead = [to_row(item)], []
        except RowError as exc:
            rows, dead = [], [(exc.kind, exc.payload, str(exc))]
        with psycopg.connect(database_url) as conn:
            before = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        result = store.write(rows, dead)
        assert result.stored + len(result.dead) == 1, result
        with psycopg.connect(database_url) as conn:
            after = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            if result.stored:
                row = rows[0]
                table, column = {"page": ("pages", "url"), "link": ("link_urls", "source_url"),
                                 "item": ("items", "fingerprint")}[row.kind]
                key = row.key[0] if row.kind == "link" else row.key
                found = conn.execute(f"SELECT count(*) FROM {table} WHERE job_id = %s "  # noqa: S608
                                     f"AND {column} = %s", (job_id, key)).fetchone()[0]
                assert found >= 1, row
                seen["stored"] += 1
            else:
                assert after == before + 1
                reason = conn.execute("SELECT error FROM dead_letters ORDER BY id DESC LIMIT 1"
                                      ).fetchone()[0]
                assert reason, "a dead letter without its reason"
                seen["dead"] += 1

    try:
        check()
    finally:
        store.close()
    assert seen["stored"] and seen["dead"], seen
