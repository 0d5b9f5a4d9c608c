"""Benchmark: hyperlink graphs from Postgres with graph-tool, against networkx.

Puts synthetic link tables in Postgres with COPY — 1,000, 100,000 and
1,000,000 pages with about 10 links each (Poisson out-degree, power-law
in-degree: targets drawn with probability proportional to rank^-0.9), 100
pages per host — then times each step of a page-level build in a fresh
process: read (COPY out of Postgres into numpy), build, PageRank, components
(weak and strong), k-core, GEXF export. networkx does the same steps for
1,000 and 100,000 pages as the baseline (rows fetched with psycopg,
`DiGraph`, `pagerank`, `weakly/strongly_connected_components`, `core_number`,
`write_gexf`). Prints seconds per step, the ratio and the peak memory of each
process, and links read per second at about 1 and 10 million links (the read's
parts too: links, nodes, redirects, canonicals); writes bench/results/graph.json.

    .venv/bin/python bench/graph.py [--sizes 1000,100000,1000000] [--networkx-max 100000]
    .venv/bin/python bench/graph.py --sizes 10000000 --results graph_10m

The second, not part of `make bench` (loading 100 million links takes long),
times 10 million pages and about 100 million links from Postgres to PageRank,
components and k-core (`seconds_10m_pages`, target under 3 minutes and
12 GB) and writes bench/results/graph_10m.json. Above `--export-max` pages
(1,000,000) the GEXF export is left out: 100 million edges make gigabytes of
XML, and the target stops at k-core. The peak memory after each step is
printed and written (`peak_mb_after_<step>_<pages>`). Its first run (2 cores,
idle machine, 99.5 million links, loaded in 807 s) failed in the read: the
links' one packed COPY row needed 1.4 GB, past PostgreSQL's 1 GB for a row; they
now come in 64 rows. Then: read 54 s (5.9 GB), build 122 s (14.6 GB, the
peak), PageRank 92 s, components 33 s, k-core 24 s: 325 s. With the build's
edges written into their columns and its link arrays freed early: read 46 s,
build 109 s (10.5 GB, the peak), PageRank 87 s, components 34 s, k-core 23 s:
299 s and 10.5 GB, inside the memory target, not yet inside the time.

It starts its own PostgreSQL (`stack.Stack`) in a temporary directory
on free ports and removes it afterwards. Targets: 1,000 pages end to end under
1 s; 1,000,000 pages from Postgres to PageRank, components and k-core under
60 s; at least 20x faster than networkx at 100,000 pages; links read at 3
million a second or more at 10 million links.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, start_stack, write_results  # noqa: E402

#: Links read per second when links held their URLs' text, hashed by the server at
#: each read (before migrations/0023_url_ids.sql; this bench, 2 cores).
READ_LINKS_PER_S_BY_TEXT = {"1m": 1_200_000, "10m": 926_000}
#: … and when links were ids but the nodes query grouped every URL by its text on
#: the server (this bench, idle machine, 2026-12-02).
READ_LINKS_PER_S_GROUPED = {"1m": 1_815_000, "10m": 1_316_000}
STEPS = ("read", "build", "pagerank", "components", "kcore", "gexf_export")
TO_KCORE = ("read", "build", "pagerank", "components", "kcore")


# --- data --------------------------------------------------------------------------


def synthetic_links(pages: int, per_page: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) page numbers, unique pairs: Poisson out-degree, power-law in-degree."""
    rng = np.random.default_rng(seed)
    out = rng.poisson(per_page, pages)
    source = np.repeat(np.arange(pages, dtype=np.int64), out)
    weights = np.arange(1, pages + 1, dtype=np.float64) ** -0.9
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    popular = rng.permutation(pages)  # which page has which popularity rank
    target = popular[np.minimum(np.searchsorted(cdf, rng.random(len(source))), pages - 1)]
    keys = np.unique(source * pages + target)
    return keys // pages, keys % pages


def url_of(i: int, hosts: int) -> str:
    return f"https://h{i % hosts}.example.org/p/{i}"


def load(database_url: str, pages: int, per_page: float) -> tuple[uuid.UUID, int, float]:
    """Insert a user, a job, its pages and links with COPY; return (job, links, seconds)."""
    started = time.perf_counter()
    source, target = synthetic_links(pages, per_page, seed=pages)
    hosts = max(1, pages // 100)
    urls = [url_of(i, hosts) for i in range(pages)]
    job = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        user = conn.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x') "
                            "ON CONFLICT (username) DO UPDATE SET role = 'user' RETURNING id",
                            ("bench",)).fetchone()[0]
        conn.execute("INSERT INTO jobs (id, owner_id, spider, status) "
                     "VALUES (%s, %s, 'site', 'finished')", (job, user))
        with conn.cursor() as cur:
            with cur.copy("COPY pages (job_id, url, final_url, status, fetched_at) "
                          "FROM STDIN") as copy:
                prefix = f"{job}\t"
                for start in range(0, pages, 100_000):
                    copy.write("".join(f"{prefix}{u}\t{u}\t200\t2026-01-01T00:00:00Z\n"
                                       for u in urls[start:start + 100_000]))
            # The links' URLs are pages here; a link holds their ids (`urls`).
            cur.execute("INSERT INTO urls (job_id, id, url) "
                        "SELECT job_id, hashtextextended(url, 0), url FROM pages "
                        "WHERE job_id = %s", (job,))
            ids = np.empty(pages, dtype=np.int64)
            for start in range(0, pages, 1_000_000):
                chunk = urls[start:start + 1_000_000]
                ids[start:start + len(chunk)] = [row[0] for row in cur.execute(
                    "SELECT hashtextextended(u, 0) FROM unnest(%s::text[]) WITH ORDINALITY "
                    "AS a (u, n) ORDER BY n", (chunk,))]
            # A row of packed links per source page, targets by ascending id.
            order = np.lexsort((ids[target], source))
            by_source, targets = source[order], ids[target][order].astype(">i8").tobytes()
            starts = np.flatnonzero(np.r_[True, by_source[1:] != by_source[:-1]])
            ends = np.r_[starts[1:], len(by_source)].tolist()
            with cur.copy("COPY outlinks (job_id, source_id, target_ids, counts, nofollow, "
                          "anchor_texts) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["uuid", "int8", "bytea", "bytea", "bytea", "text[]"])
                for start, end in zip(starts.tolist(), ends, strict=True):
                    n = end - start
                    copy.write_row((job, int(ids[by_source[start]]),
                                    targets[start * 8:end * 8], b"\0\0\0\1" * n, b"\0" * n,
                                    [""] * n))
        conn.execute("VACUUM ANALYZE pages")
        conn.execute("VACUUM ANALYZE outlinks")
        conn.execute("VACUUM ANALYZE urls")
    return job, len(source), time.perf_counter() - started


# --- measurements (each in its own process, for a clean peak memory) ---------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_graphtool(database_url: str, job: str, out: Path, export: bool = True) -> dict:
    from graphs.build import BuildOptions, build_graph
    from graphs.exports import write_export
    from graphs.metrics import compute_metrics
    from graphs.read import read_links

    times: dict[str, float] = {}
    memory: dict[str, float] = {}  # the process's peak after each step
    started = time.perf_counter()
    table = read_links(database_url, [job])
    times["read"], memory["read"] = time.perf_counter() - started, peak_mb()
    read_parts = {k: round(v, 3) for k, v in table.timings.items()}
    started = time.perf_counter()
    g = build_graph(table, BuildOptions(level="page"))
    times["build"], memory["build"] = time.perf_counter() - started, peak_mb()
    del table
    for name in ("pagerank", "components", "kcore"):
        started = time.perf_counter()
        compute_metrics(g, [name])
        times[name], memory[name] = time.perf_counter() - started, peak_mb()
    if export:
        started = time.perf_counter()
        write_export(g, "gexf", out)
        times["gexf_export"], memory["gexf_export"] = time.perf_counter() - started, peak_mb()
    return {"times": times, "memory": memory, "read_parts": read_parts,
            "nodes": g.num_vertices(), "edges": g.num_edges(), "peak_mb": peak_mb()}


def measure_networkx(database_url: str, job: str, out: Path, export: bool = True) -> dict:
    import networkx as nx

    times: dict[str, float] = {}
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT source_url, target_url, count FROM link_urls WHERE job_id = %s",
                            (job,)).fetchall()
        urls = conn.execute("SELECT url FROM pages WHERE job_id = %s", (job,)).fetchall()
    times["read"] = time.perf_counter() - started
    started = time.perf_counter()
    g = nx.DiGraph()
    g.add_nodes_from(u for (u,) in urls)
    g.add_weighted_edges_from(rows)
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    times["build"] = time.perf_counter() - started
    del rows
    started = time.perf_counter()
    rank = nx.pagerank(g, alpha=0.85, weight="weight")
    times["pagerank"] = time.perf_counter() - started
    started = time.perf_counter()
    weak = list(nx.weakly_connected_components(g))
    strong = list(nx.strongly_connected_components(g))
    times["components"] = time.perf_counter() - started
    started = time.perf_counter()
    core = nx.core_number(g)
    times["kcore"] = time.perf_counter() - started
    if export:
        started = time.perf_counter()
        nx.set_node_attributes(g, rank, "pagerank")
        nx.set_node_attributes(g, core, "kcore")
        nx.write_gexf(g, out)
        times["gexf_export"] = time.perf_counter() - started
    return {"times": times, "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
            "peak_mb": peak_mb(), "components": [len(weak), len(strong)]}


def run_child(engine: str, database_url: str, job: uuid.UUID, tmp: Path,
              export: bool = True) -> dict:
    env = {**os.environ, "BENCH_DATABASE_URL": database_url}  # not on the command line
    out = tmp / f"{engine}-{job}.gexf"
    done = subprocess.run(
        [sys.executable, __file__, "--measure", engine, "--job", str(job), "--out", str(out),
         *([] if export else ["--no-export"])],
        env=env, capture_output=True, text=True, check=False, timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} measurement failed:\n{done.stderr[-3000:]}")
    out.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--networkx-max", type=int, default=100_000)
    parser.add_argument("--links-per-page", type=float, default=10.0)
    parser.add_argument("--export-max", type=int, default=1_000_000,
                        help="leave the GEXF export out above this many pages")
    parser.add_argument("--results", default="graph", help="bench/results/<this>.json")
    parser.add_argument("--no-export", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("graphtool", "networkx"), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure = measure_graphtool if args.measure == "graphtool" else measure_networkx
        print(json.dumps(measure(os.environ["BENCH_DATABASE_URL"], args.job, Path(args.out),
                                 export=not args.no_export)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    stack, home = start_stack({"postgres"})
    results: list[dict] = []
    rows: list[tuple[str, ...]] = []
    try:
        url = stack.settings.database_url
        for pages in sizes:
            job, links, load_s = load(url, pages, args.links_per_page)
            print(f"== {pages:,} pages, {links:,} links (loaded with COPY in {load_s:.1f} s)",
                  flush=True)
            ours = run_child("graphtool", url, job, home, export=pages <= args.export_max)
            base = (run_child("networkx", url, job, home, export=pages <= args.export_max)
                    if pages <= args.networkx_max else None)
            for step in (s for s in STEPS if s in ours["times"]):
                mine = ours["times"][step]
                theirs = base["times"][step] if base else None
                print(f"   {step:<12} graph-tool {mine:8.3f} s, peak {ours['memory'][step]:7.0f} MB"
                      + (f"   networkx {theirs:8.3f} s   x{theirs / mine:,.1f}" if base else ""))
                results.append({"name": f"{step}_seconds_{pages}", "value": round(mine, 4),
                                "unit": "s", "baseline": round(theirs, 4) if base else None})
                results.append({"name": f"peak_mb_after_{step}_{pages}",
                                "value": round(ours["memory"][step], 1), "unit": "MB"})
            total = sum(ours["times"].values())  # the export's included where it ran
            to_kcore = sum(ours["times"][s] for s in TO_KCORE)
            print(f"   end to end   graph-tool {total:8.3f} s, peak {ours['peak_mb']:.0f} MB"
                  + (f"   networkx {sum(base['times'].values()):8.3f} s, peak "
                     f"{base['peak_mb']:.0f} MB" if base else ""), flush=True)
            results += [
                {"name": f"end_to_end_seconds_{pages}", "value": round(total, 4), "unit": "s",
                 "target": 1.0 if pages == 1000 else None},
                {"name": f"to_kcore_seconds_{pages}", "value": round(to_kcore, 4), "unit": "s"},
                {"name": f"peak_mb_{pages}", "value": round(ours["peak_mb"], 1), "unit": "MB"},
                {"name": f"nodes_{pages}", "value": ours["nodes"], "unit": "nodes"},
                {"name": f"edges_{pages}", "value": ours["edges"], "unit": "edges"},
            ]
            if "read_parts" in ours:
                print(f"   read: {ours['read_parts']}")
            millions = {100_000: "1m", 1_000_000: "10m", 10_000_000: "100m"}.get(pages)
            if millions:
                rate = links / ours["times"]["read"]
                results.append({"name": f"read_links_per_s_{millions}", "value": round(rate),
                                "unit": "links/s", "target": 3_000_000 if pages == 1_000_000
                                else None, "baseline": READ_LINKS_PER_S_BY_TEXT.get(millions),
                                "baseline_grouped_nodes": READ_LINKS_PER_S_GROUPED.get(millions)})
                label = f"links read into numpy, {links / 1e6:.0f}M links"
                figure = f"{rate / 1e6:.2f} M/s"
                target = ">= 3 M/s" if pages == 1_000_000 else "-"
                baselines = [(base_rate, how) for base_rate, how in (
                    (READ_LINKS_PER_S_BY_TEXT.get(millions), "by URL text"),
                    (READ_LINKS_PER_S_GROUPED.get(millions), "nodes grouped")) if base_rate]
                rows += [(label, figure, f"{base_rate / 1e6:.2f} M/s {how}",
                          f"x{rate / base_rate:.1f}", target) for base_rate, how in baselines]
                if not baselines:  # none was measured at this size
                    rows.append((label, figure, "-", "-", target))
            if pages == 1000:
                rows.append(("end to end, 1k pages", f"{total:.3f} s",
                             f"{sum(base['times'].values()):.3f} s" if base else "-",
                             f"x{sum(base['times'].values()) / total:.1f}" if base else "-",
                             "< 1 s"))
            if base:
                ratio = sum(base["times"].values()) / total
                results.append({"name": f"ratio_vs_networkx_{pages // 1000}k",
                                "value": round(ratio, 2), "unit": "x",
                                "target": 20.0 if pages == 100_000 else None})
                results.append({"name": f"networkx_peak_mb_{pages}",
                                "value": round(base["peak_mb"], 1), "unit": "MB"})
                if pages == 100_000:
                    rows.append(("speed-up vs networkx, 100k pages", f"{total:.3f} s",
                                 f"{sum(base['times'].values()):.3f} s", f"x{ratio:.1f}",
                                 ">= 20x"))
            if pages == 1_000_000:
                results.append({"name": "seconds_1m_pages", "value": round(to_kcore, 3),
                                "unit": "s", "target": 60.0})
                rows.append(("1M pages: Postgres to PageRank, components, k-core",
                             f"{to_kcore:.1f} s", "-", "-", "< 60 s"))
            if pages == 10_000_000:
                results.append({"name": "seconds_10m_pages", "value": round(to_kcore, 3),
                                "unit": "s", "target": 180.0})
                rows.append(("10M pages: Postgres to PageRank, components, k-core",
                             f"{to_kcore:.1f} s", "-", "-", "< 180 s and 12 GB"))
            rows.append((f"peak memory, {pages:,} pages", f"{ours['peak_mb']:.0f} MB",
                         f"{base['peak_mb']:.0f} MB" if base else "-", "-", "-"))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM outlinks WHERE job_id = %s", (job,))
                conn.execute("DELETE FROM jobs WHERE id = %s", (job,))
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    print()
    print_table(rows)
    write_results(args.results, results)


if __name__ == "__main__":
    main()
