"""Benchmark: the console in headless Chromium, from first load to a drawn network.

Starts its own stack (PostgreSQL, Redis, scrapyd, the API that serves the console,
a graph worker; `bench.common.start_stack`), puts a synthetic page graph of
10,000 pages and about 100,000 links in PostgreSQL with COPY (`bench.graph.load`:
Poisson out-degree, power-law in-degree), builds it through the API, then drives
Debian's Chromium with Playwright and measures:

- first load: a logged-in person opens the console until the jobs table shows
  (median of 5 fresh page loads; target < 1 s), and the bytes the browser
  downloaded for it; baseline: fetching the same files with httpx;
- the network: opening the build's network view until sigma has drawn every node
  and the network answers the mouse (median of 3; target < 3 s), and the bytes of
  it; baseline: fetching the build's JSON node-link export with httpx; then until
  the layout is done and every edge is drawn too (a graph of many edges draws its
  edges once, when the layout is done);
- pan and zoom: a person drags the network with the mouse and turns the wheel
  (real input events through Playwright): the time of the frames that drew while
  the camera moved (mean and 95th percentile; target < 50 ms); baseline: a 60 Hz
  frame, 16.7 ms. Animation frames in which nothing was drawn (the input came
  slower than the screen) are left out: they are no picture a person sees, and
  counting them, as this bench did before, hid two thirds of a moving frame's
  cost in the mean (both are in the results). The console hides the edges of a
  large graph while the camera moves and draws them when it stops: the time from
  the last moving frame to the still picture (the move's end) and a still frame
  with every edge drawn (the camera set by script, 30 times) are figures of
  their own.
Headless Chromium draws WebGL in software (SwiftShader) here, on 2 cores: a
laptop with a GPU draws faster.

Where a moving frame's time went (Chrome's trace and timing in the page): not in
JavaScript (a moving frame's render is about 1 ms of it) but in the GPU process,
where SwiftShader drew the nodes while the page's main thread waited for it
(reading the WebGL canvases back for the software compositor). Sigma's default
node program, an instanced triangle per node, took about 370 ms a frame for
10,000 nodes on a busy machine, and as much again for the picking layer (the
hidden drawing that finds the node under the pointer); without the nodes a frame
took 20 ms. As GL points (one vertex a node) the same nodes took 40 ms; leaving
the picking layer out while the camera moves saved a third of what was left.
The worst moving frame was sigma's own: with hideEdgesOnMove it refreshes the
whole graph (every reducer, 106,000 items, about 330 ms of script) when a drag
is released, while the inertia still moves the camera; the console now hides the
edges in its edge program and draws them at the next still frame instead. On the
shared machine (load average 6 to 8 of 2 cores), the frames that drew while
moving: mean 736 ms, p95 1017 ms before; mean 42 and 37 ms, p95 67 ms in two runs
after (every animation frame, the measure before: 208 ms before, 27 and 25 ms
after); the move's end 2333 ms before, 900 and 650 ms after. The still frame
with every edge drawn (1.4 to 2 s here) is the 96,000 edges' and is left as it was.

Writes bench/results/console.json.

    .venv/bin/python bench/console.py [--pages 10000] [--per-page 10]
"""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, start_stack, write_results  # noqa: E402
from bench.graph import load  # noqa: E402
from jobapi.users import hash_password  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FRAMES = 30
PAN_ZOOM = """async (frames) => {
    const { renderer } = window.crawlgraphNetwork;
    const camera = renderer.getCamera();
    const times = [];
    let last = performance.now();
    for (let i = 0; i < frames; i++) {
        const t = i / frames * 2 * Math.PI;
        camera.setState({ x: 0.5 + 0.2 * Math.cos(t), y: 0.5 + 0.2 * Math.sin(t),
                          ratio: 0.6 + 0.4 * Math.cos(2 * t) });
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const now = performance.now();
        times.push(now - last);
        last = now;
    }
    return times;
}"""
# Frames while a person moves the camera, recorded in the page at each animation frame:
# its time, whether the camera was moving (sigma's own test: it hides the edges
# meanwhile), how many times sigma drew since the last one and whether one of those drew
# the still picture (edges and all). A moving frame is one that drew while the camera
# moved at both its ends: the animation frames in which nothing was drawn (the input
# came slower than the screen) are not frames a person sees, and counting them (as this
# bench did before) put a third of a frame's cost into the mean.
FRAMES_START = """() => { window.__frames = []; window.__recording = true;
    const { renderer } = window.crawlgraphNetwork;
    const mouse = renderer.getMouseCaptor();
    const moving = () => renderer.getCamera().isAnimated() || mouse.isMoving
        || mouse.draggedEvents > 0 || mouse.currentWheelDirection !== 0;
    let draws = 0, still = 0;
    renderer.on("afterRender", () => { draws++; if (!moving()) still++; });
    const tick = (t) => {
        if (!window.__recording) return;
        window.__frames.push([t, moving(), draws, still]);
        draws = 0; still = 0;
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick); }"""
FRAMES_STOP = """() => { window.__recording = false; const f = window.__frames;
    return f.slice(1).map(([t, moving, draws, still], i) =>
        [t - f[i][0], f[i][1] && moving, draws > 0, still > 0, moving]); }"""
BYTES = """() => performance.getEntriesByType('navigation').concat(
    performance.getEntriesByType('resource')).reduce((n, e) => n + (e.transferSize || 0), 0)"""


def _build(api: str, headers: dict[str, str], job: str) -> dict:
    build = httpx.post(f"{api}/jobs/{job}/graphs", json={"level": "page"}, headers=headers,
                       timeout=60).json()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        build = httpx.get(f"{api}/graphs/{build['id']}", headers=headers, timeout=60).json()
        if build["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    if build["status"] != "done":
        raise SystemExit(f"the graph build did not finish: {build}")
    return build


def _pan_and_zoom(page) -> list[list]:
    """[frame ms, moving, drew, drew the still picture, moving at its end] while the mouse
    drags the network and the wheel zooms, until the picture is still again."""
    box = page.locator("#network").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.evaluate(FRAMES_START)
    page.mouse.down()
    for i in range(40):
        t = i / 40 * 2 * math.pi
        page.mouse.move(cx + 150 * math.cos(t), cy + 100 * math.sin(t))
        page.wait_for_timeout(16)
    page.mouse.up()
    for delta in (-300, -300, 300, 300, -300, 300):
        page.mouse.wheel(0, delta)
        page.wait_for_timeout(60)
    page.wait_for_function("""() => { const f = window.__frames; let last = -1;
        f.forEach((g, i) => { if (g[1]) last = i; });
        return last >= 0 && f.slice(last + 1).some((g) => g[3] > 0); }""", timeout=60_000)
    return page.evaluate(FRAMES_STOP)


def _settle_ms(recorded: list[list]) -> float:
    """From the last frame of the move to the end of the frame that drew the still picture."""
    last = max(i for i, (_, _, _, _, moving_end) in enumerate(recorded) if moving_end)
    still = next(i for i in range(last + 1, len(recorded)) if recorded[i][3])
    return sum(ms for ms, *_ in recorded[last + 1:still + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--per-page", type=float, default=10.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    stack, home = start_stack(["postgres", "redis", "scrapyd", "api", "graph-worker-1"])
    try:
        base = stack.settings.api_url
        api = base + "/api/v1"
        job, links, _ = load(stack.settings.database_url, args.pages, args.per_page)
        password = secrets.token_urlsafe(16)
        with psycopg.connect(stack.settings.database_url, autocommit=True) as conn:
            conn.execute("UPDATE users SET password_hash = %s WHERE username = 'bench'",
                         (hash_password(password),))
        creds = {"username": "bench", "password": password}
        token = httpx.post(f"{api}/auth/token", json=creds, timeout=60).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        build = _build(api, headers, str(job))
        print(f"== a page graph of {build['node_count']:,} nodes, {build['edge_count']:,} edges")

        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            assets = sum(len(client.get(p).content) for p in
                         ("/", "/console/console.js", "/console/console.css"))
        assets_s = time.perf_counter() - started
        started = time.perf_counter()
        export = httpx.get(f"{api}/graphs/{build['id']}/export", params={"format": "json"},
                           headers=headers, timeout=120).content
        export_s = time.perf_counter() - started

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.goto(base + "/")
            page.locator("#username").fill("bench")
            page.locator("#password").fill(password)
            page.locator("#password").press("Enter")
            page.locator("#logout").wait_for()
            loads, load_bytes = [], 0
            for _ in range(5):
                page.goto("about:blank")  # a fresh document each time, not a hash change
                started = time.perf_counter()
                page.goto(base + "/#/jobs", wait_until="commit")
                page.locator("#jobs table").wait_for()
                loads.append(time.perf_counter() - started)
                load_bytes = page.evaluate(BYTES)
            draws, draw_bytes = [], 0
            for _ in range(3):
                page.goto(base + "/#/jobs")
                page.locator("#jobs table").wait_for()
                started = time.perf_counter()
                page.evaluate(f"location.hash = '#/graphs/{build['id']}'")
                page.locator("#network[data-nodes]").wait_for()
                draws.append(time.perf_counter() - started)
                draw_bytes = page.evaluate(BYTES)
            drawn = page.evaluate("window.crawlgraphNetwork.graph.order")
            page.locator("#network[data-layout=done]").wait_for(timeout=300_000)
            edges_drawn = time.perf_counter() - started
            recorded = _pan_and_zoom(page)
            still = page.evaluate(PAN_ZOOM, FRAMES)[1:]
            browser.close()
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)

    first_load = statistics.median(loads)
    draw = statistics.median(draws)
    frames = [ms for ms, moving, drew, *_ in recorded if moving and drew]
    ticks = [ms for ms, moving, *_ in recorded if moving]  # the measure before: any frame
    settle = _settle_ms(recorded)
    frame_mean = statistics.fmean(frames)
    frame_p95 = sorted(frames)[int(0.95 * len(frames)) - 1]
    still_mean = statistics.fmean(still)
    rows = [
        ("first load to interactive (s)", f"{first_load:.3f}", f"{assets_s:.3f} (httpx)",
         f"{first_load / assets_s:.1f}x", "< 1 s"),
        ("bytes of the first load", f"{load_bytes:,}", f"{assets:,} (the files)",
         f"{load_bytes / assets:.2f}x", ""),
        ("network: open to drawn (s)", f"{draw:.3f}", f"{export_s:.3f} (JSON export)",
         f"{draw / export_s:.1f}x", "< 3 s"),
        ("network: open to laid out, every edge drawn (s)", f"{edges_drawn:.3f}",
         f"{export_s:.3f} (JSON export)", f"{edges_drawn / export_s:.1f}x", ""),
        ("bytes of the network view", f"{draw_bytes:,}", f"{len(export):,} (JSON export)",
         f"{draw_bytes / len(export):.2f}x", ""),
        ("pan/zoom frame, mean (ms)", f"{frame_mean:.1f}", "16.7 (60 Hz)",
         f"{frame_mean / 16.7:.1f}x", "< 50 ms"),
        ("pan/zoom frame, p95 (ms)", f"{frame_p95:.1f}", "16.7 (60 Hz)",
         f"{frame_p95 / 16.7:.1f}x", "< 50 ms"),
        ("move end: last moving frame to the still picture (ms)", f"{settle:.1f}",
         "16.7 (60 Hz)", f"{settle / 16.7:.1f}x", ""),
        ("still frame, every edge drawn (ms)", f"{still_mean:.1f}", "16.7 (60 Hz)",
         f"{still_mean / 16.7:.1f}x", ""),
    ]
    print_table(rows)
    write_results("console", [
        {"figure": "first_load_s", "value": first_load, "baseline_httpx_s": assets_s,
         "target": 1.0, "samples": loads},
        {"figure": "first_load_bytes", "value": load_bytes, "baseline_bytes": assets},
        {"figure": "network_drawn_s", "value": draw, "baseline_json_export_s": export_s,
         "target": 3.0, "samples": draws, "nodes_drawn": drawn},
        {"figure": "network_bytes", "value": draw_bytes, "baseline_json_export_bytes":
         len(export)},
        {"figure": "pan_zoom_frame_ms_mean", "value": frame_mean, "baseline_ms": 16.7,
         "target": 50.0, "every_animation_frame_ms_mean": statistics.fmean(ticks)},
        {"figure": "pan_zoom_frame_ms_p95", "value": frame_p95, "baseline_ms": 16.7,
         "target": 50.0, "frames": len(frames), "animation_frames": len(ticks)},
        {"figure": "pan_zoom_move_end_ms", "value": settle, "baseline_ms": 16.7},
        {"figure": "network_edges_drawn_s", "value": edges_drawn,
         "baseline_json_export_s": export_s},
        {"figure": "still_frame_all_edges_ms_mean", "value": still_mean, "baseline_ms": 16.7},
    ], pages=args.pages, nodes=build["node_count"], edges=build["edge_count"], links=links)


if __name__ == "__main__":
    main()
