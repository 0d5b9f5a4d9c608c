"""The shared throttle state's Redis operations, as Lua scripts (each runs atomically).

Keys of one host of one job (`crawler.middlewares.throttleredis`):
``crawlgraph:<job>:throttle:<host:port>``, a hash with the fields ``next``
(the earliest start of the next request), ``delay`` (the adapted delay),
``crawl_delay`` (robots.txt), ``paused_until``, ``strikes`` (429/503 in a
row) and ``deferred_until`` (the latest start promised to a deferred request),
and ``crawlgraph:<job>:throttle:inflight:<host:port>``, a sorted set of
reservation tokens by lease expiry. Times are Redis's clock (``TIME``), so
workers on machines whose clocks disagree still share one schedule.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Final


@cache
def sha(script: str) -> str:
    """The SHA1 Redis knows a script by (EVALSHA)."""
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis's script id

# KEYS: state hash, in-flight zset. ARGV: min_delay, max_concurrency, token, lease seconds.
# Returns the seconds to wait before starting (as a string: Lua numbers become
# integers in replies), or "-1" when the host is at its concurrency limit.
ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local maxc = tonumber(ARGV[2])
if maxc > 0 and redis.call('ZCARD', KEYS[2]) >= maxc then return '-1' end
local h = redis.call('HMGET', KEYS[1], 'next', 'delay', 'crawl_delay', 'paused_until')
local interval = math.max(tonumber(ARGV[1]), tonumber(h[2] or 0), tonumber(h[3] or 0))
local start = math.max(now, tonumber(h[1] or 0), tonumber(h[4] or 0))
redis.call('HSET', KEYS[1], 'next', tostring(start + interval))
redis.call('ZADD', KEYS[2], start + tonumber(ARGV[4]), ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('EXPIRE', KEYS[2], 86400)
return tostring(start - now)
"""

# KEYS: state hash, in-flight zset. ARGV: min_delay, max_concurrency, token, lease seconds,
# defer_after seconds. Returns {verdict, seconds}: 'ok' (reserved, as ACQUIRE: start
# in `seconds`), 'busy' (at the concurrency limit, the host due within defer_after) or
# 'defer' (the host is not due for longer than defer_after: nothing is reserved, and
# `seconds` is when to come back, each deferred request of the host one interval
# after the one deferred before it, so that they do not all come back at once).
ACQUIRE_OR_DEFER: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local h = redis.call('HMGET', KEYS[1], 'next', 'delay', 'crawl_delay', 'paused_until',
                     'deferred_until')
local interval = math.max(tonumber(ARGV[1]), tonumber(h[2] or 0), tonumber(h[3] or 0))
local start = math.max(now, tonumber(h[1] or 0), tonumber(h[4] or 0))
if start - now > tonumber(ARGV[5]) then
  local later = math.max(start, tonumber(h[5] or 0) + interval)
  redis.call('HSET', KEYS[1], 'deferred_until', tostring(later))
  redis.call('EXPIRE', KEYS[1], 86400)
  return {'defer', tostring(later - now)}
end
local maxc = tonumber(ARGV[2])
if maxc > 0 and redis.call('ZCARD', KEYS[2]) >= maxc then return {'busy', '0'} end
redis.call('HSET', KEYS[1], 'next', tostring(start + interval))
redis.call('ZADD', KEYS[2], start + tonumber(ARGV[4]), ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('EXPIRE', KEYS[2], 86400)
return {'ok', tostring(start - now)}
"""

# KEYS: state hash, in-flight zset. ARGV: latency, target concurrency, min, max, ok (1/0),
# the token to release ('' for none): one round trip per response.
ADAPT: Final = """
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[2], ARGV[6]) end
local old = tonumber(redis.call('HGET', KEYS[1], 'delay') or ARGV[3])
local target = tonumber(ARGV[1]) / tonumber(ARGV[2])
local new = math.max(target, (old + target) / 2)
new = math.min(math.max(new, tonumber(ARGV[3])), tonumber(ARGV[4]))
if ARGV[5] == '0' and new < old then return tostring(old) end
redis.call('HSET', KEYS[1], 'delay', tostring(new))
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'strikes', 0) end
return tostring(new)
"""

# KEYS: state hash, in-flight zset. ARGV: pause seconds (or -1 for exponential), base,
# cap, the token to release ('' for none). Returns the pause applied.
PAUSE: Final = """
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause = tonumber(ARGV[1])
local strikes = redis.call('HINCRBY', KEYS[1], 'strikes', 1)
if pause < 0 then
  pause = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (strikes - 1))
end
local untl = now + pause
local old = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or 0)
if untl > old then redis.call('HSET', KEYS[1], 'paused_until', tostring(untl)) end
return tostring(pause)
"""
