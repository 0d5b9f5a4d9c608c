"""The frontier's Redis operations, as Lua scripts (each runs atomically).

Keys of one job (`crawler.frontier.queue.FrontierKeys`), all sharing the hash tag
``{job}`` so that they live on one Redis Cluster slot:

- ``q``  sorted set: queued member -> score (lower first: priority, then FIFO);
- ``r``  hash: member -> serialized request (queued or leased members only);
- ``l``  sorted set: leased member -> lease expiry (Redis server time, ms);
- ``ls`` hash: leased member -> its queue score, to requeue it where it was;
- ``s:<2 bytes>`` hashes: the seen-set, bucketed by the fingerprint's first two
  bytes (small hashes use Redis's compact listpack encoding: about 16 bytes per
  URL against 56 in one big set);
- ``n``  seen count, ``c`` push sequence, ``p`` paused flag, ``w`` workers
  sorted set (member -> heartbeat expiry);
- ``x``  the tombstone of an ended job (finished, cancelled or abandoned): set
  before its other keys are deleted, it makes every later push and lease a
  no-op, so that a worker starting late cannot crawl the job again;
- ``d``  sorted set: deferred member -> not-before time (Redis server time, ms);
- ``ds`` hash: deferred member -> its queue score, to queue it where it was.

A member is a request's 8-byte fingerprint, or ``dontfilter:<n>`` for requests
that bypass the seen-set. A fingerprint enters the seen-set in the same script
that queues its request, and leaves the queue only into a lease, and a lease
only by acknowledgement (done), expiry (back into the queue) or deferral
(into ``d``, which the next lease moves back into the queue once it is due):
a URL is skipped only while it is queued, leased, deferred or done, or once
its job has ended.
"""

from __future__ import annotations

from typing import Final

#: Lua prelude: ``now``, Redis server time in ms (also `crawler.middlewares.robotswait`'s).
NOW_MS: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: q, r, n, c, x ; ARGV: seen-prefix, then (member, priority, payload, filter) * N
# Returns how many requests were queued (none once the job has ended).
PUSH: Final = """
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
local added = 0
local prefix = ARGV[1]
for i = 2, #ARGV, 4 do
    local member = ARGV[i]
    local fresh = true
    if ARGV[i + 3] == '1' then
        local bucket = prefix .. string.sub(member, 1, 2)
        fresh = redis.call('HSETNX', bucket, string.sub(member, 3), '') == 1
        if fresh then redis.call('INCR', KEYS[3]) end
    else
        member = 'dontfilter:' .. redis.call('INCR', KEYS[4])
    end
    if fresh then
        local seq = redis.call('INCR', KEYS[4])
        -- higher priority first, then first in, first out
        local score = -tonumber(ARGV[i + 1]) * 1e10 + seq
        redis.call('ZADD', KEYS[1], string.format('%.17g', score), member)
        redis.call('HSET', KEYS[2], member, ARGV[i + 2])
        added = added + 1
    end
end
return added
"""

# KEYS: q, r, l, ls, p, w, x, d, ds ; ARGV: count, lease ms, worker id ('' for none),
# heartbeat ms, most deferred members to requeue.
# Records the worker's heartbeat first: a worker that holds leases counts as live;
# then queues the deferred members that are due, each at its old place.
# Returns {member, payload, ...}, {-1} while the job is paused, {-2} once it has ended.
LEASE: Final = (
    NOW_MS
    + """
if redis.call('EXISTS', KEYS[7]) == 1 then return {-2} end
if ARGV[3] ~= '' then
    redis.call('ZADD', KEYS[6], now + tonumber(ARGV[4]), ARGV[3])
end
if redis.call('EXISTS', KEYS[5]) == 1 then return {-1} end
local due = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, member in ipairs(due) do
    redis.call('ZREM', KEYS[8], member)
    redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[9], member) or '0', member)
    redis.call('HDEL', KEYS[9], member)
end
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local out = {}
local expiry = now + tonumber(ARGV[2])
for i = 1, #popped, 2 do
    local member = popped[i]
    local payload = redis.call('HGET', KEYS[2], member)
    if payload then
        redis.call('ZADD', KEYS[3], expiry, member)
        redis.call('HSET', KEYS[4], member, popped[i + 1])
        out[#out + 1] = member
        out[#out + 1] = payload
    end
end
return out
"""
)

# KEYS: l ; ARGV: lease ms, members... ; renews only leases that still exist.
RENEW: Final = (
    NOW_MS
    + """
local renewed = 0
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do
    renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
end
return renewed
"""
)

# KEYS: q, r, l, ls, d, ds ; ARGV: members... ; the request is done: forget all but
# its seen-set entry (also if its lease had expired and it was queued or deferred again).
ACK: Final = """
local acked = 0
for i = 1, #ARGV do
    acked = acked + redis.call('ZREM', KEYS[3], ARGV[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
    redis.call('ZREM', KEYS[5], ARGV[i])
    redis.call('HDEL', KEYS[6], ARGV[i])
end
return acked
"""

# KEYS: l, ls, d, ds, x ; ARGV: (member, delay ms) * N ; swap leases for deferrals:
# each member that is still leased leaves the leases for ``d``, due `delay` ms from
# now, keeping its queue score; its payload stays. One step, so a worker that dies
# before or after it loses nothing (its lease expires, or the deferral is in Redis).
# Returns how many were deferred (none once the job has ended).
DEFER: Final = (
    NOW_MS
    + """
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
local deferred = 0
for i = 1, #ARGV, 2 do
    local member = ARGV[i]
    if redis.call('ZREM', KEYS[1], member) == 1 then
        redis.call('ZADD', KEYS[3], now + tonumber(ARGV[i + 1]), member)
        redis.call('HSET', KEYS[4], member, redis.call('HGET', KEYS[2], member) or '0')
        redis.call('HDEL', KEYS[2], member)
        deferred = deferred + 1
    end
end
return deferred
"""
)

# KEYS: q, l, ls ; ARGV: members... ; give leases back to the queue now.
RELEASE: Final = """
local released = 0
for i = 1, #ARGV do
    if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
        local score = redis.call('HGET', KEYS[3], ARGV[i]) or '0'
        redis.call('ZADD', KEYS[1], score, ARGV[i])
        redis.call('HDEL', KEYS[3], ARGV[i])
        released = released + 1
    end
end
return released
"""

# KEYS: q, l, ls ; ARGV: limit ; requeue leases that expired (their worker died
# or stalled). Returns how many.
RECLAIM: Final = (
    NOW_MS
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(expired) do
    redis.call('ZREM', KEYS[2], member)
    local score = redis.call('HGET', KEYS[3], member) or '0'
    redis.call('ZADD', KEYS[1], score, member)
    redis.call('HDEL', KEYS[3], member)
end
return #expired
"""
)

# KEYS: q, l, n, p, w, x, d ; ARGV: worker id ('' for none), heartbeat ms
# Records the worker's heartbeat (not on an ended job), drops dead workers, and
# returns {queued, leased, seen, paused, live workers, deferred}.
STATS: Final = (
    NOW_MS
    + """
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[6]) == 0 then
    redis.call('ZADD', KEYS[5], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
return {
    redis.call('ZCARD', KEYS[1]),
    redis.call('ZCARD', KEYS[2]),
    tonumber(redis.call('GET', KEYS[3]) or '0'),
    redis.call('EXISTS', KEYS[4]),
    redis.call('ZCARD', KEYS[5]),
    redis.call('ZCARD', KEYS[7]),
}
"""
)

# KEYS: q, l, w, x, d ; ARGV: '1' if the job must also be empty, tombstone ms
# The last worker ends the job: if no other worker is live (and, with '1', nothing
# is queued, leased or deferred), the tombstone is set in the same step, so that no worker
# can lease, or push into a seen-set about to be deleted, after the decision.
# Returns 1 if the job has ended (now or before), 0 if it goes on.
END: Final = (
    NOW_MS
    + """
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
if ARGV[1] == '1' and (redis.call('ZCARD', KEYS[1]) > 0 or redis.call('ZCARD', KEYS[2]) > 0
                       or redis.call('ZCARD', KEYS[5]) > 0) then
    return 0
end
redis.call('SET', KEYS[4], '1', 'PX', tonumber(ARGV[2]))
return 1
"""
)
