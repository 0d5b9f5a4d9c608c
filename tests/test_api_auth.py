"""Job API authentication: tokens, every way a token can be wrong, passwords, rate limits."""

from __future__ import annotations

import io
import logging
import re
import time
import types

import jwt
import msgspec
import psycopg
import pytest

from jobapi.ratelimit import Limit, RateLimits
from tests.api_fixtures import JWT_SECRET, PASSWORDS, assert_error, login, make_client

pytest_plugins = ["tests.api_fixtures"]


def test_health_needs_no_token_and_reports_each_service(client):
    response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "redis", "scrapyd[0]"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "password" not in response.text and "@" not in response.text
    assert response.headers["x-request-id"]


def test_token_json_and_form_and_me(client, users):
    headers = login(client, "alice")
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice" and me.json()["role"] == "user"
    form = client.post("/api/v1/auth/token",
                       data={"username": "bob", "password": PASSWORDS["bob"]})
    assert form.status_code == 200, form.text
    body = form.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"],
                        audience="crawlgraph-api", issuer="crawlgraph")
    assert claims["name"] == "bob"


def test_wrong_password_and_unknown_user_are_401(client, users):
    wrong = client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"})
    assert_error(wrong, 401, "unauthorized")
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "x"})
    assert_error(unknown, 401, "unauthorized")
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def _forge(**overrides):
    now = int(time.time())
    claims = {"sub": "1", "iss": "crawlgraph", "aud": "crawlgraph-api", "iat": now,
              "exp": now + 600}
    key, algorithm = overrides.pop("key", JWT_SECRET), overrides.pop("alg", "HS256")
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def _none_alg_token() -> str:
    import base64
    import json

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    return part({"alg": "none", "typ": "JWT"}) + "." + part(
        {"sub": "1", "iss": "crawlgraph", "aud": "crawlgraph-api", "iat": now,
         "exp": now + 600}) + "."


@pytest.mark.parametrize("token", [
    pytest.param(None, id="no token"),
    pytest.param(lambda: _forge(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
                 id="expired"),
    pytest.param(lambda: _forge(key="another-key-" + "x" * 40), id="other key"),
    pytest.param(_none_alg_token, id="alg none"),
    pytest.param(lambda: _forge(alg="HS512"), id="HS512"),
    pytest.param(lambda: _forge(aud="someone-else"), id="other audience"),
    pytest.param(lambda: _forge(iss="someone-else"), id="other issuer"),
    pytest.param(lambda: _forge(exp=None), id="no exp"),
    pytest.param(lambda: "not.a.token", id="garbage"),
])
def test_bad_tokens_are_401_on_every_protected_route(client, users, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token()}"}
    for method, path in (("GET", "/api/v1/auth/me"), ("GET", "/api/v1/jobs"),
                         ("POST", "/api/v1/jobs"), ("GET", "/api/v1/users"),
                         ("GET", "/api/v1/spiders"), ("GET", "/metrics")):
        response = client.request(method, path, headers=headers, json={} if method == "POST"
                                  else None)
        error = assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in error["message"]


def test_a_valid_forged_token_works_and_a_disabled_user_is_refused(client, users):
    token = _forge(sub=str(users["alice"]))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    admin = login(client, "root")
    patch = client.patch(f"/api/v1/users/{users['alice']}", json={"disabled": True},
                         headers=admin)
    assert patch.status_code == 200, patch.text
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401)
    login_again = client.post("/api/v1/auth/token",
                              json={"username": "alice", "password": PASSWORDS["alice"]})
    assert_error(login_again, 401)


def test_a_change_made_elsewhere_takes_effect_within_the_user_cache_bound(
        client, users, database_url, monkeypatch):
    # Another API process disables alice and demotes root: this process learns it from
    # the database once its cached entries are USER_CACHE_SECONDS old, not at once.
    from jobapi import auth

    now = [time.monotonic()]
    monkeypatch.setattr(auth, "time", types.SimpleNamespace(monotonic=lambda: now[0],
                                                            time=time.time))
    alice, root = login(client, "alice"), login(client, "root")
    assert client.get("/api/v1/auth/me", headers=alice).status_code == 200
    assert client.get("/api/v1/users", headers=root).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET disabled = true WHERE id = %s", (users["alice"],))
        conn.execute("UPDATE users SET role = 'user' WHERE id = %s", (users["root"],))
    now[0] += auth.USER_CACHE_SECONDS + 0.01
    assert_error(client.get("/api/v1/auth/me", headers=alice), 401)
    assert_error(client.get("/api/v1/users", headers=root), 403)


def test_password_over_72_bytes_is_a_clear_400(client, users):
    admin = login(client, "root")
    response = client.post("/api/v1/users", headers=admin,
                           json={"username": "long", "password": "é" * 40})
    error = assert_error(response, 400, "password_too_long", field="password")
    assert "72" in error["message"]
    login_long = client.post("/api/v1/auth/token", json={"username": "alice",
                                                          "password": "x" * 100})
    assert_error(login_long, 400, "password_too_long")


def test_login_rate_limit_per_username_answers_429_with_retry_after(api_settings, users):
    # Fixed windows: an hour long, so that the test's few seconds never straddle two.
    limits = RateLimits(login_per_username=Limit(3, 3600), login_per_address=Limit(100, 3600))
    with make_client(api_settings, rate_limits=limits) as client:
        for _ in range(3):
            response = client.post("/api/v1/auth/token",
                                   json={"username": "alice", "password": "wrong"})
            assert response.status_code == 401
        limited = client.post("/api/v1/auth/token",
                              json={"username": "alice", "password": PASSWORDS["alice"]})
        assert_error(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 3601
        # Another username is still let in.
        assert client.post("/api/v1/auth/token",
                           json={"username": "bob", "password": PASSWORDS["bob"]}
                           ).status_code == 200


def test_login_rate_limit_per_address(api_settings, users):
    limits = RateLimits(login_per_username=None, login_per_address=Limit(2, 3600))
    with make_client(api_settings, rate_limits=limits) as client:
        for name in ("alice", "bob"):
            assert client.post("/api/v1/auth/token", json={
                "username": name, "password": PASSWORDS[name]}).status_code == 200
        assert_error(client.post("/api/v1/auth/token", json={
            "username": "root", "password": PASSWORDS["root"]}), 429)


def test_request_id_is_taken_or_made(client):
    given = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert made.headers["x-request-id"] != "bad id\twith spaces"
    assert len(made.headers["x-request-id"]) == 32


def test_unknown_route_and_method_use_the_error_shape(client, users):
    headers = login(client, "alice")
    assert_error(client.get("/api/v1/nothing-here", headers=headers), 404)
    assert_error(client.delete("/api/v1/jobs", headers=headers), 405)


def test_body_size_limit_is_413(client, users):
    headers = login(client, "alice")
    response = client.post("/api/v1/jobs", headers={**headers, "content-type": "application/json"},
                           content=b'{"start_urls": ["' + b"a" * (5 * 1024 * 1024) + b'"]}')
    assert_error(response, 413)


def test_cors_only_for_allowed_origins(api_settings, users):
    with make_client(api_settings) as client:
        plain = client.get("/health", headers={"Origin": "https://ui.example"})
        assert "access-control-allow-origin" not in plain.headers
    allowed = msgspec.structs.replace(api_settings, cors_origins=("https://ui.example",))
    with make_client(allowed) as client:
        ok = client.options("/api/v1/jobs", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_failed_login_and_denied_access_are_logged_without_secrets(client, users, caplog):
    secret = "hunter2-not-the-password"
    with caplog.at_level(logging.INFO, logger="jobapi"):
        client.post("/api/v1/auth/token", json={"username": "alice", "password": secret},
                    headers={"X-Request-ID": "login-req-1"})
        client.get("/api/v1/jobs", headers={"Authorization": "Bearer forged.token.value"})
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'request_id', '')}" for r in caplog.records)
    assert "failed login for 'alice'" in text
    assert "denied GET /api/v1/jobs" in text
    assert secret not in text and "forged.token.value" not in text
    assert PASSWORDS["alice"] not in text
    failed = [r for r in caplog.records if "failed login" in r.getMessage()]
    assert [getattr(r, "request_id", None) for r in failed] == ["login-req-1"]


def test_openapi_page_and_document_need_no_token(client):
    page = client.get("/schema")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    doc = client.get("/schema/openapi.json").json()
    operations = [(path, method, op) for path, item in doc["paths"].items()
                  for method, op in item.items() if isinstance(op, dict) and "responses" in op]
    assert len(operations) >= 17
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    for path, method, op in operations:
        assert op.get("description"), (method, path)
        if "/graphs" in path:
            continue  # the graph routes document their own bodies
        for media in op.get("requestBody", {}).get("content", {}).values():
            assert media.get("examples") or media.get("schema", {}).get("examples"), (method, path)
    assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_every_request_has_one_access_line_with_its_request_id(client):
    handler = next(h for h in logging.getLogger("jobapi").handlers
                   if getattr(h, "_crawlgraph", False))
    written = io.StringIO()
    stream = handler.setStream(written)
    try:
        client.get("/health", headers={"X-Request-ID": "line-req-1"})
    finally:
        handler.setStream(stream)
    lines = [line for line in written.getvalue().splitlines() if "jobapi.access" in line]
    assert len(lines) == 1, written.getvalue()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO jobapi.access \[line-req-1\] "
                        r"GET /health (200|503) \d+\.\dms", lines[0]), lines[0]
