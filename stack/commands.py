"""The stack's crawlgraph commands without a port: graph workers, the scheduler, the webhook
sender, the purger.

Each is `python -m cli <command>` in a process group of its own, healthy
while it runs. They are processes of their own rather than tasks in the API:
each can stop, crash or be restarted without the API, any number may run at
once on any machine that reaches PostgreSQL (and Redis and scrapyd for the
scheduler), and what they work on waits in PostgreSQL meanwhile.
"""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar

from stack.service import Service
from stack.settings import REPO_ROOT
from stack.supervise import START_TIMEOUT, wait_until


class CommandService(Service):
    """A crawlgraph command run as a service; `command` is its argv after `crawlgraph`.

    The command is also the `process_marker`: what the process's command line shows.
    """

    command: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.process_marker = " ".join(cls.command)

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
        self._spawn([sys.executable, "-m", "cli", *self.command], env, REPO_ROOT)
        # Give it a moment to fail on a bad configuration rather than report it started.
        time.sleep(0.5)
        wait_until(self.healthy, START_TIMEOUT, self.name, self.logfile)


class GraphWorker(CommandService):
    """A graph build worker: takes queued builds from PostgreSQL (`crawlgraph graph-worker`)."""

    command = ("graph-worker",)


class Scheduler(CommandService):
    """Fires the due slots of schedules, each once (`jobapi.services.schedules_loop`)."""

    command = ("scheduler",)


class WebhookSender(CommandService):
    """Sends the webhook deliveries jobs and builds leave in PostgreSQL (`webhooks_loop`).

    Apart from the scheduler: a slow receiver never delays a schedule's slot.
    """

    command = ("webhook", "deliver")


class Purger(CommandService):
    """Purges what deleted jobs and graph builds leave, in batches (`purge_loop`)."""

    command = ("purge",)
