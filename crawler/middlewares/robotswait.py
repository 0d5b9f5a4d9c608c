"""A host's robots.txt outage, shared by every worker of a job through its Redis frontier.

While robots.txt of a host answers 5xx or does not answer (timeout, reset),
the job's workers agree in Redis on one state per origin: when the outage
began, how often robots.txt was asked, when it may be asked again, and
whether the crawl gave up on the host. The key is the job's frontier key
``cg:{job}:rb:<origin>`` (a hash: ``since``, ``until``, ``attempt``,
``status``, ``detail``, ``claim``, ``gave_up``), so it shares the frontier's
hash tag and is deleted with the frontier when the job ends or is cleared.

- `check(origin)`: no outage known (``None``: fetch robots.txt as usual); or
  wait (robots.txt is asked again in `Outage.delay` seconds; while another
  worker is asking right now, look again within a second); or ask (this
  worker holds the claim to ask now, for ``claim_seconds``, so that one
  worker of the job asks at a time); or gave up.
- `failed(origin, ...)`: robots.txt failed again: the next ask is due after an
  exponential, capped, jittered backoff (``base * 2**(attempt-1)``, at most
  ``cap``, times [0.5, 1.5)), never later than the bound; at the bound
  (``max_wait`` seconds after the outage began) the job gives up on the host.
- `answered(origin)`: robots.txt answered (2xx, 4xx): the outage is over.

Each call is one Lua script (atomic, Redis server time). Used by
`crawler.middlewares.robots` when requests can be deferred
(`crawler.frontier.defer.can_defer`).
"""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass
from typing import Final, Literal

from crawler.frontier.queue import JobFrontier
from crawler.frontier.scripts import NOW_MS

_FIELDS: Final = """
local h = redis.call('HMGET', KEYS[1], 'since', 'until', 'attempt', 'status', 'detail',
                     'claim', 'gave_up')
local since, untl, attempt = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
local status, detail, claim = h[4] or '0', h[5] or '', h[6] or ''
"""

# KEYS: state ; ARGV: claim token, claim ms, poll ms
# Returns {verdict, delay ms, attempt, status, detail, waited ms}; verdict 'none' alone.
CHECK: Final = NOW_MS + _FIELDS + """
if not since then return {'none'} end
if h[7] == '1' then return {'gave_up', 0, attempt, status, detail, now - since} end
if untl > now then
    local wait = untl - now
    if claim ~= '' and wait > tonumber(ARGV[3]) then wait = tonumber(ARGV[3]) end
    return {'wait', wait, attempt, status, detail, now - since}
end
redis.call('HSET', KEYS[1], 'claim', ARGV[1], 'until', now + tonumber(ARGV[2]))
return {'ask', 0, attempt, status, detail, now - since}
"""

# KEYS: state ; ARGV: claim token ('' if none), status, detail, base ms, cap ms,
# jitter factor, max wait ms. The first failure starts the outage; a claimed ask
# counts one more attempt; an unclaimed ask that another worker recorded first
# changes nothing. Returns as CHECK, plus '1' when this call started the outage
# or gave up on the host (to record the event once per job).
FAILED: Final = NOW_MS + _FIELDS + """
if h[7] == '1' then return {'gave_up', 0, attempt, status, detail, now - since, '0'} end
local first = '0'
if not since then
    since, attempt, first = now, 1, '1'
elseif ARGV[1] ~= '' and claim == ARGV[1] then
    attempt = attempt + 1
else
    return {'wait', math.max(untl - now, 0), attempt, status, detail, now - since, '0'}
end
local limit = since + tonumber(ARGV[7])
if now >= limit then
    redis.call('HSET', KEYS[1], 'since', since, 'attempt', attempt, 'status', ARGV[2],
               'detail', ARGV[3], 'claim', '', 'gave_up', '1')
    return {'gave_up', 0, attempt, ARGV[2], ARGV[3], now - since, '1'}
end
local backoff = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (attempt - 1))
local due = math.min(now + math.floor(backoff * tonumber(ARGV[6])), limit)
redis.call('HSET', KEYS[1], 'since', since, 'until', due, 'attempt', attempt,
           'status', ARGV[2], 'detail', ARGV[3], 'claim', '')
return {'wait', due - now, attempt, ARGV[2], ARGV[3], now - since, first}
"""

Verdict = Literal["wait", "ask", "gave_up"]


@dataclass(frozen=True, slots=True)
class Outage:
    """What the job knows of a host's robots.txt outage."""

    verdict: Verdict
    delay: float  # seconds until robots.txt may be asked again ("wait")
    attempt: int  # how often robots.txt failed
    status: int  # its last status; 0 when it did not answer
    detail: str  # how it failed: "answered 503", "timeout: no answer in time"
    waited: float  # seconds since the outage began
    token: str = ""  # the claim this worker holds ("ask")
    news: bool = False  # `failed` started the outage, or gave up on the host


def _outage(row: list, token: str = "") -> Outage:
    text = [v.decode() if isinstance(v, bytes) else v for v in row]
    return Outage(verdict=text[0], delay=int(text[1]) / 1000, attempt=int(text[2]),
                  status=int(text[3]), detail=str(text[4]), waited=int(text[5]) / 1000,
                  token=token, news=len(text) > 6 and text[6] == "1")


class RobotsOutages:
    """The robots.txt outages of one job's hosts, in its Redis frontier."""

    def __init__(self, frontier: JobFrontier, *, max_wait: float, base: float, cap: float,
                 claim_seconds: float, poll_seconds: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.frontier = frontier
        self.max_wait_ms = int(max_wait * 1000)
        self.base_ms = int(base * 1000)
        self.cap_ms = int(cap * 1000)
        self.claim_ms = int(claim_seconds * 1000)
        self.poll_ms = int(poll_seconds * 1000)
        self.rng = rng or random.Random()
        self._tokens = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())
        client = frontier.client
        self._check = client.register_script(CHECK)
        self._failed = client.register_script(FAILED)

    def key(self, origin: str) -> str:
        return self.frontier.keys.key("rb:" + origin)

    async def check(self, origin: str) -> Outage | None:
        """The host's outage (None: none known); verdict "ask" claims the next ask."""
        token = next(self._tokens)
        row = await self._check(keys=[self.key(origin)], args=[token, self.claim_ms,
                                                               self.poll_ms])
        if row[0] in (b"none", "none"):
            return None
        return _outage(row, token if row[0] in (b"ask", "ask") else "")

    async def failed(self, origin: str, token: str, status: int, detail: str) -> Outage:
        """robots.txt failed (again): the state after it (wait, or gave up)."""
        factor = 0.5 + self.rng.random()
        row = await self._failed(keys=[self.key(origin)], args=[
            token, status, detail[:500], self.base_ms, self.cap_ms, factor, self.max_wait_ms])
        return _outage(row)

    async def answered(self, origin: str) -> None:
        """robots.txt answered: the host's outage, if any, is over."""
        await self.frontier.client.delete(self.key(origin))
