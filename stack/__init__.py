"""The embedded local stack: PostgreSQL, Redis, scrapyd, the API and the graph worker.

`crawlgraph up` starts each embedded service under the data directory
(`.crawlgraph/`, or `CRAWLGRAPH_HOME`), waits until it is healthy and records
its pid in `<service>.pid`; `down` stops only what `up` started; `status`
reports each service. A service whose URL is configured (`DATABASE_URL`,
`REDIS_URL`, `SCRAPYD_URLS`) is used as it is and never started or stopped.

The rooms: `supervise` (spawning and stopping process groups), `credentials`
(the generated secrets), `service` (the `Service` base class), one module per
service, and `manager` (`Stack`, which starts them in order).
"""

from stack.manager import Stack

__all__ = ["Stack"]
