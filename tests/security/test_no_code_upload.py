"""Scenario 14 (the API part): nothing in the API lets a user upload code.

No route reaches scrapyd's `addversion.json` (or any endpoint beyond
scheduling, cancelling and listing), a job cannot name a spider module path,
and a job cannot set a Scrapy setting outside the allow-list. The API is put
behind a recording proxy in front of the session's real scrapyd: every call it
makes to scrapyd is logged with its form fields, while every route of the
route table is exercised (with upload attempts and hostile bodies) and one real
job runs to the end.

The loopback and credentials part of scenario 14 is `test_service_exposure.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec
import pytest

from jobapi.ratelimit import RateLimits
from jobapi.services.validation import ALLOWED_SETTINGS
from tests.api_fixtures import assert_error, login, make_client
from tests.hostile_pages import PageServer, Reply
from tests.security.routetable import fill, operations

pytest_plugins = ["tests.api_fixtures"]

# What the API may ask of scrapyd: start, stop and watch crawler processes.
SCRAPYD_ALLOWED = {"schedule.json", "cancel.json", "listjobs.json", "daemonstatus.json"}
SPIDER_PATHS = [
    "crawler.spiders.site", "crawler.spiders.site.SiteSpider", "crawler/spiders/site",
    "../site", "site.py", "os", "__import__", "SITE", "site\x00", "site;id", "site ",
    "https://evil.example/spider.py", "scrapy.spiders.Spider",
]
FORBIDDEN_SETTINGS = [
    "SPIDER_MODULES", "NEWSPIDER_MODULE", "SPIDER_LOADER_CLASS", "ITEM_PIPELINES",
    "DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "EXTENSIONS", "SCHEDULER",
    "DUPEFILTER_CLASS", "TWISTED_REACTOR", "DOWNLOAD_HANDLERS", "ADDONS", "FEEDS", "FEED_URI",
    "LOG_FILE", "JOBDIR", "STATS_CLASS", "REQUEST_FINGERPRINTER_CLASS", "TELNETCONSOLE_ENABLED",
    "CRAWLGRAPH_DATABASE_URL", "CRAWLGRAPH_REDIS_URL", "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS",
    "CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS", "spider_modules", "ITEM_PIPELINES ",
    " USER_AGENT", "USER_AGENT=x", "DOWNLOAD_DELAY\nSPIDER_MODULES", "user_agent",
]
UPLOAD_PATHS = ["/addversion.json", "/api/v1/addversion.json", "/api/v1/scrapyd/addversion.json",
                "/api/v1/projects", "/api/v1/spiders/upload",
                "/api/v1/jobs/../../addversion.json", "/api/v1/eggs", "/schema/../addversion.json"]


class _Recorder:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        self.calls: list[tuple[str, str, list[tuple[str, str]]]] = []
        self.lock = threading.Lock()


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    recorder: _Recorder

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path)
        fields = parse_qsl(path.query, keep_blank_values=True)
        if body:
            fields += parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        with self.recorder.lock:
            self.recorder.calls.append((self.command, path.path.lstrip("/"), fields))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        upstream = httpx.request(self.command, self.recorder.upstream + self.path,
                                 content=body, headers=headers, timeout=30)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = do_POST = _forward  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def recorded_scrapyd(scrapyd_url) -> Iterator[tuple[str, _Recorder]]:
    """A recording proxy in front of the real scrapyd: (URL with the credentials, recorder)."""
    recorder = _Recorder(scrapyd_url)
    handler = type("Handler", (_Forward,), {"recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    parts = urlsplit(scrapyd_url)
    try:
        yield f"http://{parts.username}:{parts.password}@127.0.0.1:{server.server_port}", \
            recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _wait_finished(client, job_id: str, headers: dict[str, str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("finished", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")


@pytest.mark.scenario(14, done="behind a recording proxy to scrapyd: call every API route "
                               "(egg uploads, spider module paths, 29 forbidden settings, "
                               "scrapyd paths) and run one real job",
                      checked="scrapyd only ever gets schedule/cancel/listjobs/daemonstatus, "
                              "never addversion.json; schedule.json carries a catalog spider "
                              "and allow-listed settings only; every attempt is 4xx")
def test_no_route_uploads_code_or_chooses_a_module(api_settings, users, database_url,
                                                   redis_url, recorded_scrapyd):
    proxy_url, recorder = recorded_scrapyd
    settings = msgspec.structs.replace(api_settings, scrapyd_urls=(proxy_url,),
                                       allow_private_networks=True)
    overrides = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url}
    site = {"/": Reply(b"<html><head><title>t</title></head><body>one page</body></html>"),
            "/robots.txt": Reply(b"", 404)}
    with PageServer(site) as target, \
            make_client(settings, crawler_overrides=overrides,
                        rate_limits=RateLimits(jobs_per_user=None)) as client:
        alice = login(client, "alice")
        json_headers = {**alice, "content-type": "application/json"}
        base = {"start_urls": [target.url("/")]}  # one page, no links

        # An egg, as a file upload or a raw body, to every route that takes a body.
        egg = b"PK\x03\x04" + b"\x00" * 64
        for op in operations(client.app):
            if op.method not in ("POST", "PATCH", "PUT"):
                continue
            path = fill(op.path, {"job_id": "00000000-0000-4000-8000-000000000000",
                                  "schedule_id": "00000000-0000-4000-8000-000000000000",
                                  "user_id": users["alice"]})
            uploads = [
                client.request(op.method, path, headers=alice,
                               files={"egg": ("crawlgraph.egg", egg, "application/zip")},
                               data={"project": "crawlgraph", "version": "r1"}),
                client.request(op.method, path, headers={**alice,
                                                         "content-type": "application/zip"},
                               content=egg),
            ]
            for response in uploads:
                assert 400 <= response.status_code < 500, (str(op), response.status_code)
        for path in UPLOAD_PATHS:
            for method in ("GET", "POST"):
                response = client.request(method, path, headers=alice,
                                          files={"egg": ("x.egg", egg)})
                assert response.status_code in (404, 405), (method, path, response.text)
        for method in ("POST", "PUT", "PATCH"):  # the spider list is read-only
            response = client.request(method, "/api/v1/spiders", headers=alice,
                                      files={"egg": ("x.egg", egg)})
            assert response.status_code == 405, (method, response.text)

        # A spider module path, or any name the catalog does not list, instead of a spider.
        for spider in SPIDER_PATHS:
            response = client.post("/api/v1/jobs", json={**base, "spider": spider},
                                   headers=alice)
            assert_error(response, 422, "validation_error", field="spider")
        # Settings outside the allow-list, and values smuggling one in.
        for name in FORBIDDEN_SETTINGS:
            response = client.post("/api/v1/jobs", json={**base, "settings": {name: "1"}},
                                   headers=alice)
            error = assert_error(response, 422, "validation_error")
            assert error["field"] and error["field"].startswith("settings"), (name, error)
        for value in ("x\nSPIDER_MODULES=evil", "x\rITEM_PIPELINES={}", "x\x00"):
            response = client.post("/api/v1/jobs", json={**base, "settings": {
                "USER_AGENT": value}}, headers=alice)
            assert_error(response, 422, "validation_error", field="settings.USER_AGENT")
        # Spider arguments are the job's fields: no others (e.g. scrapyd's own) pass.
        for extra in ("_version", "project", "setting", "egg", "SPIDER_MODULES", "job_id"):
            response = client.post("/api/v1/jobs", json={**base, extra: "x"},
                                   headers=json_headers)
            assert_error(response, 422, "validation_error", field=extra)
        assert not any(path == "schedule.json" for _, path, _ in recorder.calls)

        # One real job, with allow-listed settings, run to its end.
        response = client.post("/api/v1/jobs", json={
            **base, "settings": {"USER_AGENT": "ua SPIDER_MODULES=evil", "DOWNLOAD_DELAY": 0}},
            headers=alice)
        assert response.status_code == 201, response.text
        job = _wait_finished(client, response.json()["id"], alice)
        assert job["status"] == "finished", (job["error"], job["close_reason"], job["stats"])
        assert target.paths.count("/") == 1

    endpoints = {path for _, path, _ in recorder.calls}
    assert "schedule.json" in endpoints  # the proxy saw the API's calls
    assert endpoints <= SCRAPYD_ALLOWED, endpoints
    schedules = [fields for _, path, fields in recorder.calls if path == "schedule.json"]
    assert len(schedules) == 1
    fields = schedules[0]
    assert dict(fields)["project"] == "crawlgraph" and dict(fields)["spider"] == "site"
    assert [k for k, _ in fields if k in ("egg", "_version", "version")] == []
    names = [value.split("=", 1)[0] for key, value in fields if key == "setting"]
    assert set(names) <= set(ALLOWED_SETTINGS) | set(overrides), names
    assert "USER_AGENT=ua SPIDER_MODULES=evil" in [v for k, v in fields if k == "setting"]


@pytest.mark.scenario(14, done="read the OpenAPI document",
                      checked="no operation takes a file, multipart or binary body, and none "
                              "is about eggs, versions, projects or deployment")
def test_the_api_document_has_no_upload(client):
    doc = client.get("/schema/openapi.json").json()
    for path, item in doc["paths"].items():
        assert not any(word in path.lower() for word in ("egg", "version", "project", "deploy",
                                                         "upload", "addversion")), path
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            media = set(op.get("requestBody", {}).get("content", {}))
            assert media <= {"application/json", "application/x-www-form-urlencoded"}, \
                (method, path, media)
