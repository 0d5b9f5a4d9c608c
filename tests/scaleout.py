"""Two (or more) scrapyd nodes, each in a network namespace of its own, crawling one job.

`ScaleOut(database_url, redis_url, nodes=2, sites=8, ...)` (root only) builds
on a `tests.netns.Network`:

- the shared services on the host side: PostgreSQL and Redis (already
  running on loopback, e.g. the session's) reached by the nodes at the
  network's first service address through a `tests.tcprelay.Relay`;
- the web sites: one `tests.mockserver.MockServer` per site, each on a host
  address of its own (a host of its own for the per-host throttle), every
  page slowed by `page_delay` seconds as a distant server's would be;
- the nodes: scrapyd in each namespace (`NodeScrapyd`: the stack's scrapyd,
  started by `ip netns exec`, listening on the node's address), its crawler
  processes talking to the services and sites through the veth;
- the job API (`api(nodes)`), in the host's namespace, told about the nodes
  the way an operator does: ``SCRAPYD_URLS`` with their URLs.

A crawl is submitted over HTTP (`submit`), and the truth is the sites':
`expected_pages()` from the generator, `fetches()` from each server's request
log (which also names the client's address: which node fetched).
`close()` stops and removes everything, also after a failure in `open()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg

from core.settings import Settings
from stack.scrapyd import Scrapyd
from tests.api_fixtures import JWT_SECRET, PASSWORDS, add_user
from tests.faults.helpers import ApiProcess, wait_for
from tests.mockserver import MockServer
from tests.netns import Network
from tests.tcprelay import Relay

REPO = Path(__file__).resolve().parent.parent
NODE_PORT = 6800
USER = "scaleout"
ENDED = ("finished", "failed", "cancelled")


@dataclass
class NodeScrapyd(Scrapyd):
    """The stack's scrapyd, run inside a node's namespace on the node's own address."""

    network: Network | None = None
    node: int = 0

    @property
    def bind_address(self) -> str:
        assert self.network is not None
        return self.network.node_address(self.node)

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        assert self.network is not None
        return super()._spawn(self.network.run_argv(self.node, argv), env, cwd)


def _moved(url: str, host: str) -> str:
    """`url` with its host (loopback) replaced by `host`, port and credentials kept."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    port = hostport.rsplit(":", 1)[1]
    return parts._replace(netloc=f"{userinfo}@{host}:{port}" if userinfo
                          else f"{host}:{port}").geturl()


class ScaleOut:
    """Nodes in namespaces, shared services and sites on the host, and the API."""

    def __init__(self, database_url: str, redis_url: str, *, nodes: int = 2, sites: int = 8,
                 pages: int = 60, page_delay: float = 0.0,
                 crawler_settings: dict[str, Any] | None = None) -> None:
        self.network = Network(nodes=nodes, services=1 + sites)
        self.service_host = self.network.services[0]
        self.local_database_url, self.local_redis_url = database_url, redis_url
        self.database_url = _moved(database_url, self.service_host)
        self.redis_url = _moved(redis_url, self.service_host)
        self.site_params = [dict(pages=pages, seed=100 + k, page_delay=page_delay,
                                 host=self.network.services[1 + k]) for k in range(sites)]
        self.crawler_settings = {k: str(v) for k, v in (crawler_settings or {}).items()}
        self.creds = {"scrapyd_username": "node",
                      "scrapyd_password": secrets.token_urlsafe(16)}
        self.dir = Path(tempfile.mkdtemp(prefix="crawlgraph-scaleout-"))
        self.relay: Relay | None = None
        self.sites: list[MockServer] = []
        self.nodes: list[NodeScrapyd] = []
        self.apis: list[ApiProcess] = []

    # --- lifecycle ----------------------------------------------------
    def open(self) -> ScaleOut:
        try:
            self.network.open()
            routes = []
            for url in (self.local_database_url, self.local_redis_url):
                port = urlsplit(url).port
                assert port is not None
                routes.append((self.service_host, port, "127.0.0.1", port))
            self.relay = Relay(routes).start()
            for params in self.site_params:
                self.sites.append(MockServer(**params).start())
            for i in range(len(self.network.namespaces)):
                self.nodes.append(self._node(i))
                self.nodes[-1].start(self.creds)
            add_user(self.local_database_url, USER)
        except BaseException:
            self.close()
            raise
        return self

    def node_url(self, i: int) -> str:
        user, password = (quote(self.creds[k], safe="")
                          for k in ("scrapyd_username", "scrapyd_password"))
        return f"http://{user}:{password}@{self.network.node_address(i)}:{NODE_PORT}"

    def node_address(self, i: int) -> str:
        return self.network.node_address(i)

    def _node(self, i: int) -> NodeScrapyd:
        home = self.dir / f"node{i}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items()
               if k not in {"DATABASE_URL", "REDIS_URL", "SCRAPYD_URLS"}}
        env.update(CRAWLGRAPH_HOME=str(home), CRAWLGRAPH_SCRAPYD_PORT=str(NODE_PORT),
                   SCRAPYD_URLS=self.node_url(i), DATABASE_URL=self.database_url,
                   REDIS_URL=self.redis_url, ALLOW_PRIVATE_NETWORKS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                            os.environ.get("PYTHONPATH")])))
        return NodeScrapyd("scrapyd", Settings.from_env(env), env, network=self.network,
                           node=i)

    def api(self, nodes: list[int]) -> ApiProcess:
        """The job API in the host's namespace, its ``SCRAPYD_URLS`` these nodes."""
        env = {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
               "SCRAPYD_URLS": ",".join(self.node_url(i) for i in nodes),
               "CRAWLGRAPH_HOME": str(self.dir), "CRAWLGRAPH_JWT_SECRET": JWT_SECRET,
               "ALLOW_PRIVATE_NETWORKS": "1", "CRAWLGRAPH_LOG_LEVEL": "WARNING",
               "CRAWLGRAPH_TEST_CRAWLER_SETTINGS": json.dumps(self.crawler_settings)}
        api = ApiProcess(env, self.dir / f"api-{len(self.apis)}.log")
        self.apis.append(api)
        return api.start()

    def kill_node(self, i: int) -> list[int]:
        """`kill -9` node `i`: its scrapyd and every crawler process it runs."""
        pids = self.network.kill(i)
        self.nodes[i].stop()  # reaps the dead scrapyd
        return pids

    def close(self) -> None:
        for api in self.apis:
            api.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        for site in self.sites:
            site.close()
        if self.relay is not None:
            self.relay.close()
        self.network.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ScaleOut:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- a crawl ------------------------------------------------------
    def start_urls(self) -> list[str]:
        return [site.start_url for site in self.sites]

    def submit(self, api: ApiProcess, body: dict[str, Any]) -> str:
        """POST the job as the test user; its id."""
        login = httpx.post(f"{api.url}/api/v1/auth/token", timeout=30,
                           json={"username": USER, "password": PASSWORDS[USER]})
        assert login.status_code == 200, login.text
        response = httpx.post(f"{api.url}/api/v1/jobs", json=body, timeout=60, headers={
            "Authorization": f"Bearer {login.json()['access_token']}"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        with psycopg.connect(self.local_database_url) as conn:
            status, started, finished, scrapyd_jobs = conn.execute(
                "SELECT status, started_at, finished_at, scrapyd_jobs FROM jobs WHERE id = %s",
                (job_id,)).fetchone()
        return {"status": status, "started_at": started, "finished_at": finished,
                "scrapyd_jobs": scrapyd_jobs}

    def wait_ended(self, job_id: str, timeout: float) -> dict[str, Any]:
        """The job's row once it has ended (AssertionError after `timeout` seconds)."""
        return wait_for(lambda: (row := self.job(job_id))["status"] in ENDED and row,
                        timeout, f"job {job_id} to end", interval=0.5)

    def stored_pages(self, job_id: str) -> list[str]:
        with psycopg.connect(self.local_database_url) as conn:
            return [r[0] for r in conn.execute("SELECT url FROM pages WHERE job_id = %s",
                                               (job_id,))]

    def expected_pages(self) -> set[str]:
        """Every page of every site a crawl from its start page reaches (the generator's)."""
        return {url for site in self.sites for url in site.site.reachable(site.origin)}

    def fetches(self, since: float = 0.0) -> list[tuple[str, str, float]]:
        """(page URL, client address, time) of every page request the sites answered."""
        return [(site.origin + r.path, r.peer, r.time) for site in self.sites
                for r in site.requests("/p/") if r.time >= since]

    def fetch_counts(self) -> Counter:
        return Counter(url for url, _, _ in self.fetches())

    def clear_logs(self) -> None:
        for site in self.sites:
            site.clear_log()


def wait_stored(scaleout: ScaleOut, job_id: str, count: int, timeout: float) -> int:
    """Wait until `count` pages of the job are stored; how many are."""
    return wait_for(lambda: (n := len(scaleout.stored_pages(job_id))) >= count and n,
                    timeout, f"{count} pages stored")
