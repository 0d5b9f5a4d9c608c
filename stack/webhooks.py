"""The webhook sender as a local service: `crawlgraph webhook deliver`, healthy while it runs.

It sends the webhook deliveries that jobs and graph builds leave in
PostgreSQL (`jobapi.services.webhooks_loop`). A process of its own, beside the
scheduler: a slow receiver never delays a schedule, and a sender killed or
restarted loses no delivery (they wait in PostgreSQL).
"""

from __future__ import annotations

import sys
import time

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class WebhookSender(Service):
    """`crawlgraph webhook deliver` on this machine."""

    process_marker = "webhook deliver"

    @property
    def port(self) -> int:
        return 0

    @property
    def address(self) -> str:
        return "-"

    def healthy(self) -> bool:
        return self.pid() is not None

    def start(self, creds: dict[str, str]) -> None:
        env = dict(self.environ)
        env.update(self.settings.service_env())
        self._spawn([sys.executable, "-m", "cli", "webhook", "deliver"], env, REPO_ROOT)
        time.sleep(0.5)  # fail on a bad configuration rather than report it started
        wait_until(self.healthy, START_TIMEOUT, self.name, self.logfile)
