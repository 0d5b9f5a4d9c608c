"""The scheduler as a local service: `crawlgraph scheduler`, healthy while it runs.

It fires the due slots of schedules (`jobapi.services.schedules_loop`). A
process of its own rather than a task in the API: it can stop, crash or be
restarted without the API, any number may run at once (each slot still fires
once), and a machine can run one without serving the API.
"""

from __future__ import annotations

import sys
import time

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class Scheduler(Service):
    """`crawlgraph scheduler` on this machine."""

    process_marker = "scheduler"

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
        self._spawn([sys.executable, "-m", "cli", "scheduler"], env, REPO_ROOT)
        # Give it a moment to fail on a bad configuration rather than report it started.
        time.sleep(0.5)
        wait_until(self.healthy, START_TIMEOUT, self.name, self.logfile)
