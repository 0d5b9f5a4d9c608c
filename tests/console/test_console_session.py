"""The console's session and headers, in-process against the real PostgreSQL and Redis:
the cookie's flags, the CSRF check on state-changing requests, bearer tokens unchanged,
a strict CSP on every console answer, and only the built files served."""

from __future__ import annotations

import pytest

from jobapi.auth import SESSION_COOKIE
from tests.api_fixtures import PASSWORDS, assert_error, login

pytest_plugins = ["tests.api_fixtures"]


def _session(client, username: str) -> dict:
    response = client.post("/console/session",
                           json={"username": username, "password": PASSWORDS[username]})
    assert response.status_code == 200, response.text
    return response


def test_login_sets_an_httponly_strict_cookie_and_returns_the_csrf_token(client, users):
    response = _session(client, "alice")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain HTTP here; over TLS the cookie is Secure
    body = response.json()
    assert body["username"] == "alice" and body["role"] == "user"
    assert len(body["csrf_token"]) == 64
    assert body["csrf_token"] not in cookie
    me = client.get("/console/session")  # the cookie alone authenticates a read
    assert me.status_code == 200 and me.json()["csrf_token"] == body["csrf_token"]
    assert client.get("/api/v1/jobs").status_code == 200


def test_the_cookie_is_secure_over_tls(api_settings, users):
    from tests.api_fixtures import make_client

    with make_client(api_settings) as client:
        client.base_url = "https://testserver.local"
        response = client.post("/console/session",
                               json={"username": "alice", "password": PASSWORDS["alice"]})
        assert response.status_code == 200, response.text
        flags = {p.strip().lower() for p in response.headers["set-cookie"].split(";")[1:]}
        assert "secure" in flags


def test_a_cookie_request_that_changes_state_needs_the_csrf_token(client, users):
    csrf = _session(client, "alice").json()["csrf_token"]
    body = {"start_urls": ["https://example.org/"], "max_pages": -1}  # refused after auth
    refused = client.post("/api/v1/jobs", json=body)
    assert_error(refused, 403, "forbidden")
    assert "CSRF" in refused.json()["error"]["message"]
    wrong = client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert_error(wrong, 403, "forbidden")
    # With the token the request reaches the handler (and its validation).
    assert_error(client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf}), 422)
    # Another session's token does not fit this one.
    other = client.post("/console/session",
                        json={"username": "bob", "password": PASSWORDS["bob"]}).json()
    assert other["csrf_token"] != csrf
    assert_error(client.delete("/console/session", headers={"X-CSRF-Token": csrf}), 403)


def test_bearer_tokens_work_as_before_and_need_no_csrf_token(client, users):
    headers = login(client, "alice")
    body = {"start_urls": ["https://example.org/"], "max_pages": -1}
    assert_error(client.post("/api/v1/jobs", json=body, headers=headers), 422)
    assert_error(client.get("/api/v1/jobs"), 401)  # neither a token nor a cookie


def test_logout_clears_the_cookie(client, users):
    csrf = _session(client, "alice").json()["csrf_token"]
    response = client.delete("/console/session", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert_error(client.get("/console/session"), 401)


@pytest.mark.parametrize("body", [
    {"content": "username=alice&password=x",
     "headers": {"content-type": "application/x-www-form-urlencoded"}},
    {"content": "username=alice&password=x", "headers": {"content-type": "text/plain"}},
])
def test_login_takes_json_only_so_no_cross_site_form_can_log_in(client, users, body):
    assert_error(client.post("/console/session", **body), 400)


def test_wrong_password_is_401(client, users):
    assert_error(client.post("/console/session",
                             json={"username": "alice", "password": "wrong"}), 401)


def test_console_answers_carry_a_strict_csp(client):
    for path in ("/", "/console/console.js", "/console/console.css", "/console/layout.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    page = client.get("/").text
    assert "<script type=\"module\" src=\"/console/console.js\"></script>" in page
    assert "<script>" not in page  # no inline script


@pytest.mark.parametrize("name", ["..%2Fapp.py", "../jobapi/app.py", "build.mjs", "x.js",
                                  "package.json"])
def test_only_the_built_files_are_served(client, name):
    assert client.get(f"/console/{name}").status_code == 404
