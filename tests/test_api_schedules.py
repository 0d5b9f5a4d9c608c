"""`/api/v1/schedules` against the real stack, and firing against real PostgreSQL and Redis.

The CRUD tests go through the API (Litestar's TestClient on a fresh database).
The firing tests run `schedules_fire.fire_due` passes in this process with a
clock they choose; scrapyd is a real node where a job must run, and an
address where nothing listens where a fire must fail to start.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from jobapi.ratelimit import Limit, RateLimiter, RateLimits
from jobapi.scrapyd import ScrapydClient
from jobapi.services.loops import configure_connection
from jobapi.services.schedules_fire import FireContext, fire_due
from jobapi.services.spiders import SpiderCatalog
from tests.api_fixtures import assert_error, login
from tests.conftest import free_port

pytest_plugins = ["tests.api_fixtures"]

JOB = {"start_urls": ["http://8.8.8.8/"], "max_pages": 5}


def _schedule(client, headers, **fields: Any) -> dict:
    body = {"name": "nightly", "cron": "0 3 * * *", "job": JOB, **fields}
    response = client.post("/api/v1/schedules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_show_with_next_fire_times_in_its_time_zone(client, users):
    alice = login(client, "alice")
    made = _schedule(client, alice, timezone="Europe/Paris", overlap="queue", catchup="none")
    assert made["owner_id"] == users["alice"] and made["enabled"] is True
    times = [datetime.fromisoformat(t) for t in made["next_fire_times"]]
    assert len(times) == 5 and times == sorted(times) and times[0] > datetime.now(UTC)
    for t in times:  # 03:00 in Paris is 01:00 or 02:00 UTC, depending on DST
        local = t.astimezone(ZoneInfo("Europe/Paris"))
        assert (local.hour, local.minute) == (3, 0)
    assert datetime.fromisoformat(made["next_fire_at"]) == times[0]
    shown = client.get(f"/api/v1/schedules/{made['id']}", headers=alice).json()
    assert shown["last_runs"] == [] and shown["job"]["start_urls"] == JOB["start_urls"]
    assert (shown["overlap"], shown["catchup"]) == ("queue", "none")


def test_interval_schedule_slots_are_whole_steps_from_its_anchor(client, users):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron=None, interval_seconds=90)
    times = [datetime.fromisoformat(t) for t in made["next_fire_times"]]
    assert [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] == [90] * 4
    assert made["cron"] is None and made["interval_seconds"] == 90


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"cron": "61 * * * *"}, "cron", "minute field"),
    ({"cron": "0 25 * * *"}, "cron", "hour field"),
    ({"cron": "* * *"}, "cron", "3 fields"),
    ({"cron": "0 0 30 2 *"}, "cron", "day-of-month"),
    ({"timezone": "Europe/Pariss"}, "timezone", "'Europe/Pariss'"),
    ({"timezone": "europe/paris"}, "timezone", "Did you mean 'Europe/Paris'"),
    ({"cron": None}, "cron", "either cron or interval_seconds"),
    ({"interval_seconds": 60}, "cron", "either cron or interval_seconds"),
    ({"interval_seconds": 0, "cron": None}, "interval_seconds", ">= 1"),
    ({"overlap": "pile"}, "overlap", "enum value"),
    ({"job": {"start_urls": ["http://127.0.0.1/"]}}, "job.start_urls[0]", "private"),
    ({"job": {**JOB, "spider": "nope"}}, "job.spider", "no spider"),
    ({"job": {**JOB, "settings": {"ITEM_PIPELINES": "x"}}}, "job.settings.ITEM_PIPELINES",
     "not a setting a job may override"),
    ({"every": "day"}, "every", "unknown field"),
    ({"keep_last": -1}, "keep_last", ">= 0"),
    ({"keep_last": 100_001}, "keep_last", "<= 100000"),
])
def test_invalid_schedules_are_422_saying_what_is_wrong(client, users, fields, field, words):
    alice = login(client, "alice")
    body = {"name": "x", "cron": "0 3 * * *", "job": JOB, **fields}
    error = assert_error(client.post("/api/v1/schedules", json=body, headers=alice), 422,
                         field=field)
    assert words.lower() in (error["message"] + " " + (error["hint"] or "")).lower(), error


def test_list_is_per_owner_newest_first_with_a_cursor(client, users):
    alice, bob, root = login(client, "alice"), login(client, "bob"), login(client, "root")
    mine = [_schedule(client, alice, name=f"a{i}")["id"] for i in range(3)]
    theirs = _schedule(client, bob, name="b")["id"]
    first = client.get("/api/v1/schedules", params={"limit": 2}, headers=alice).json()
    second = client.get("/api/v1/schedules", params={"limit": 2, "cursor": first["next_cursor"]},
                        headers=alice).json()
    assert [s["id"] for s in first["items"] + second["items"]] == mine[::-1]
    assert second["next_cursor"] is None
    everyone = {s["id"] for s in client.get("/api/v1/schedules", headers=root).json()["items"]}
    assert everyone == {*mine, theirs}


def test_another_users_schedule_is_404_for_every_verb_like_an_unknown_one(client, users):
    alice, bob = login(client, "alice"), login(client, "bob")
    made = _schedule(client, alice)
    calls = [("GET", ""), ("GET", "/runs"), ("PATCH", ""), ("POST", "/pause"),
             ("POST", "/resume"), ("DELETE", "")]
    for method, suffix in calls:
        body = {"name": "taken"} if method == "PATCH" else None
        theirs = assert_error(client.request(method, f"/api/v1/schedules/{made['id']}{suffix}",
                                             json=body, headers=bob), 404, "not_found")
        nobody = uuid.uuid4()
        unknown = assert_error(client.request(method, f"/api/v1/schedules/{nobody}{suffix}",
                                              json=body, headers=bob), 404, "not_found")
        assert theirs["message"].replace(made["id"], "<id>") == \
            unknown["message"].replace(str(nobody), "<id>")
    shown = client.get(f"/api/v1/schedules/{made['id']}", headers=alice).json()
    assert shown["name"] == "nightly" and shown["enabled"] is True


def test_patch_pause_resume_delete(client, users):
    alice = login(client, "alice")
    made = _schedule(client, alice)
    url = f"/api/v1/schedules/{made['id']}"
    every_minute = client.patch(url, json={"cron": "* * * * *"}, headers=alice).json()
    first = datetime.fromisoformat(every_minute["next_fire_at"])
    assert first - datetime.now(UTC) <= timedelta(seconds=61) and first.second == 0
    assert_error(client.patch(url, json={"cron": "99 * * * *"}, headers=alice), 422, field="cron")
    assert_error(client.patch(url, json={"cron": "* * * * *", "interval_seconds": 5},
                              headers=alice), 422)
    interval = client.patch(url, json={"interval_seconds": 600, "name": "ten"},
                            headers=alice).json()
    assert (interval["cron"], interval["interval_seconds"], interval["name"]) == \
        (None, 600, "ten")
    paused = client.post(f"{url}/pause", headers=alice).json()
    assert paused["enabled"] is False and paused["next_fire_at"] is None
    assert paused["next_fire_times"] == []
    resumed = client.post(f"{url}/resume", headers=alice).json()
    assert resumed["enabled"] is True
    assert datetime.fromisoformat(resumed["next_fire_at"]) > datetime.now(UTC)
    job = client.patch(url, json={"job": {**JOB, "max_pages": 9}}, headers=alice).json()["job"]
    assert job["max_pages"] == 9
    assert client.delete(url, headers=alice).status_code == 204
    assert_error(client.get(url, headers=alice), 404, "not_found")


# --- firing ------------------------------------------------------------------------------


def _context(settings: Settings, pool: AsyncConnectionPool, redis_client: aioredis.Redis,
             scrapyd_urls: tuple[str, ...], rate_limits: RateLimits) -> FireContext:
    return FireContext(pool=pool, redis_client=redis_client,
                       scrapyd=ScrapydClient(scrapyd_urls), limiter=RateLimiter(redis_client),
                       rate_limits=rate_limits, spider_catalog=SpiderCatalog(),
                       allow_private_networks=False, crawler_overrides={},
                       grace=timedelta(seconds=30))


def _passes(settings: Settings, clocks: list[datetime], *, processes: int = 1,
            scrapyd_urls: tuple[str, ...] | None = None,
            rate_limits: RateLimits | None = None) -> list[int]:
    """Run `processes` concurrent fire_due passes (own pools) at each clock; slots handled."""
    dead_scrapyd = (f"http://127.0.0.1:{free_port()}",)

    async def run() -> list[int]:
        handled = []
        redis_client = aioredis.Redis.from_url(settings.redis_url)
        pools = [AsyncConnectionPool(settings.database_url, min_size=1, max_size=2, open=False,
                                     configure=configure_connection, kwargs={"autocommit": True})
                 for _ in range(processes)]
        contexts = [_context(settings, pool, redis_client, scrapyd_urls or dead_scrapyd,
                             rate_limits or RateLimits()) for pool in pools]
        try:
            for pool in pools:
                await pool.open(wait=True)
            for now in clocks:
                results = [0] * processes

                async def one(i: int, now: datetime = now, results: list = results) -> None:
                    results[i] = await fire_due(contexts[i], now)

                async with anyio.create_task_group() as group:
                    for i in range(processes):
                        group.start_soon(one, i)
                handled.append(sum(results))
        finally:
            for ctx in contexts:
                await ctx.scrapyd.aclose()
            for pool in pools:
                await pool.close()
            await redis_client.aclose()
        return handled

    return anyio.run(run)


def _due_now(database_url: str, schedule_id: str, seconds_ago: float) -> datetime:
    """Move the schedule's next slot into the past, as if time had passed."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "UPDATE schedules SET next_fire_at = next_fire_at - make_interval(secs => %s) "
            "WHERE id = %s RETURNING next_fire_at", (seconds_ago, schedule_id)).fetchone()[0]


def _runs(database_url: str, schedule_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT slot, outcome, job_id, missed, reason FROM schedule_runs "
                            "WHERE schedule_id = %s ORDER BY slot", (schedule_id,)).fetchall()


def _jobs(database_url: str, schedule_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT id, owner_id, status, schedule_slot, error FROM jobs "
                            "WHERE schedule_id = %s ORDER BY schedule_slot",
                            (schedule_id,)).fetchall()


def test_two_concurrent_passes_fire_a_due_slot_once(client, users, api_settings, database_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *", overlap="queue")
    due = datetime.fromisoformat(made["next_fire_at"])
    # Both passes run at the same instant, a second after the slot.
    assert _passes(api_settings, [due + timedelta(seconds=1)] * 3, processes=2) == [1, 0, 0]
    jobs = _jobs(database_url, made["id"])
    assert len(jobs) == 1 and jobs[0][1] == users["alice"] and jobs[0][3] == due
    (run,) = _runs(database_url, made["id"])
    # scrapyd is down here: the job is stored, failed with the reason, and so is the run.
    assert run[1] == "failed" and run[2] == jobs[0][0] and "scrapyd" in run[4].lower()
    assert jobs[0][2] == "failed" and "could not start" in jobs[0][4]
    shown = client.get(f"/api/v1/schedules/{made['id']}", headers=alice).json()
    assert shown["last_runs"][0]["job_id"] == str(jobs[0][0])
    assert datetime.fromisoformat(shown["next_fire_at"]) == due + timedelta(minutes=1)


def test_100_schedules_due_at_once_under_two_schedulers_fire_once_each(client, users,
                                                                       api_settings,
                                                                       database_url):
    alice = login(client, "alice")
    ids = [_schedule(client, alice, name=f"s{i}", cron="* * * * *", overlap="queue")["id"]
           for i in range(100)]
    with psycopg.connect(database_url) as conn:  # all due in the same minute
        due = conn.execute("SELECT min(next_fire_at) FROM schedules").fetchone()[0]
        conn.execute("UPDATE schedules SET next_fire_at = %s", (due,))
    unlimited = RateLimits.unlimited()
    handled = _passes(api_settings, [due + timedelta(seconds=1)] * 2, processes=2,
                      rate_limits=unlimited)
    assert handled == [100, 0]
    with psycopg.connect(database_url) as conn:
        per = conn.execute("SELECT schedule_id, schedule_slot, count(*) FROM jobs "
                           "GROUP BY 1, 2").fetchall()
        runs = conn.execute("SELECT count(*) FROM schedule_runs WHERE slot = %s",
                            (due,)).fetchone()[0]
    assert sorted(str(p[0]) for p in per) == sorted(ids)
    assert {(p[1], p[2]) for p in per} == {(due, 1)} and runs == 100


def test_a_fire_is_a_job_on_scrapyd_like_any_other(client, users, api_settings, database_url,
                                                    scrapyd_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *")
    due = datetime.fromisoformat(made["next_fire_at"])
    assert _passes(api_settings, [due], scrapyd_urls=(scrapyd_url,)) == [1]
    ((job_id, owner, status, slot, error),) = _jobs(database_url, made["id"])
    (run,) = _runs(database_url, made["id"])
    assert run[1:3] == ("submitted", job_id) and owner == users["alice"] and slot == due
    job = client.get(f"/api/v1/jobs/{job_id}", headers=alice).json()
    assert job["scrapyd_jobs"] and job["scrapyd_jobs"][0]["jobid"] == f"{job_id}-0"
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice).status_code == 200


def test_a_fire_over_the_owners_limit_is_refused_with_the_reason(client, users, api_settings,
                                                                 database_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * * *", overlap="queue")  # every second
    due = datetime.fromisoformat(made["next_fire_at"])
    one_a_minute = RateLimits(jobs_per_user=Limit(1, 60))
    _passes(api_settings, [due, due + timedelta(seconds=1)], rate_limits=one_a_minute)
    runs = _runs(database_url, made["id"])
    assert [r[1] for r in runs] == ["failed", "refused"]
    assert runs[1][2] is None and "Too many job submissions" in runs[1][4]
    assert len(_jobs(database_url, made["id"])) == 1


def test_overlap_skip_while_the_previous_job_runs(client, users, api_settings, database_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *", overlap="skip")
    due = datetime.fromisoformat(made["next_fire_at"])
    running = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status, schedule_id) "
                     "VALUES (%s, %s, 'site', 'running', %s)", (running, users["alice"],
                                                                 made["id"]))
    _passes(api_settings, [due])
    (run,) = _runs(database_url, made["id"])
    assert run[1] == "skipped" and str(running) in run[4] and run[2] is None
    assert [j[0] for j in _jobs(database_url, made["id"])] == [running]


@pytest.mark.parametrize(("catchup", "outcome"), [("latest", "failed"), ("none", "missed")])
def test_after_a_downtime_catchup_fires_the_newest_missed_slot_or_none(
        client, users, api_settings, database_url, catchup, outcome):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *", overlap="queue", catchup=catchup)
    due = datetime.fromisoformat(made["next_fire_at"])
    # No scheduler ran for 10 minutes and 40 seconds past the slot: the newest slot
    # is 40 s late, past the 30 s grace.
    now = due + timedelta(minutes=10, seconds=40)
    _passes(api_settings, [now, now + timedelta(seconds=1)])
    (run,) = _runs(database_url, made["id"])
    assert run[0] == due + timedelta(minutes=10) and run[1] == outcome and run[3] == 10
    assert len(_jobs(database_url, made["id"])) == (1 if catchup == "latest" else 0)
    shown = client.get(f"/api/v1/schedules/{made['id']}", headers=alice).json()
    assert datetime.fromisoformat(shown["next_fire_at"]) == due + timedelta(minutes=11)


def test_a_paused_schedule_does_not_fire(client, users, api_settings, database_url):
    alice = login(client, "alice")
    made = _schedule(client, alice, cron="* * * * *")
    due = datetime.fromisoformat(made["next_fire_at"])
    client.post(f"/api/v1/schedules/{made['id']}/pause", headers=alice)
    assert _passes(api_settings, [due + timedelta(seconds=5)]) == [0]
    assert _runs(database_url, made["id"]) == [] and _jobs(database_url, made["id"]) == []


def test_the_stored_job_body_round_trips(client, users):
    alice = login(client, "alice")
    made = _schedule(client, alice, job={**JOB, "tags": ["weekly"], "workers": 2})
    assert msgspec.convert(made["job"], dict)["tags"] == ["weekly"]
    assert made["job"]["workers"] == 2
