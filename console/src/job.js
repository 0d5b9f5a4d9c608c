// A job: live progress (stats, a pages/s chart from the event stream), what it fetched
// and why it failed (the summary), the pages table with a page's links, its parameters,
// the tail of its crawler logs, and the graph build that leads to the network view.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { ApiError, get, post, query } from "./api.js";
import { announce, clear, fmt, h, link, shown, table, when } from "./dom.js";
import { TERMINAL, cancelJob, deleteJob, followJob, rateOf, statusBadge } from "./jobs.js";

const LEVELS = ["page", "host", "domain"];
const METRICS = ["degree", "pagerank", "hits", "betweenness", "closeness", "components", "kcore",
  "communities", "reciprocity", "density"];
const DEFAULT_METRICS = new Set(["degree", "pagerank", "components", "kcore", "communities", "reciprocity", "density"]);

function builds(jobId) {
  try { return JSON.parse(localStorage.getItem(`crawlgraph:builds:${jobId}`) || "[]"); } catch { return []; }
}

function remember(jobId, build) {
  const list = builds(jobId).filter((b) => b.id !== build.id);
  list.unshift({ id: build.id, level: build.level });
  localStorage.setItem(`crawlgraph:builds:${jobId}`, JSON.stringify(list.slice(0, 20)));
}

const TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

function chart(el) {
  const data = [[], []];
  const plot = new uPlot({
    width: Math.min(720, el.clientWidth || 720), height: 220, title: "Responses per second (robots.txt included)",
    scales: { x: { time: true } },
    series: [{ label: "Time", value: (u, v) => (v == null ? "--" : clock(v)) },
      { label: "pages/s", stroke: "#1f5fbf", width: 2, fill: "rgba(31,95,191,0.12)", value: (u, v) => (v == null ? "--" : fmt(v, 1)) }],
    // Whole seconds at least, as a wall clock: a short crawl's ticks would otherwise
    // be fractions of a second (":41.200").
    axes: [{ incrs: TICKS, space: 80, values: (u, splits) => splits.map(clock) }, { label: "pages/s" }],
    // Away from the pointer the legend shows the latest point, not "--".
    hooks: { setCursor: [(u) => { if (u.cursor.idx == null) latest(u); }] },
  }, data, el);
  function latest(u) { if (data[0].length) u.setLegend({ idx: data[0].length - 1 }, false); }
  let last = null;
  return {
    add(pages, t = Date.now() / 1000) {
      if (last && t > last.t) {
        data[0].push(t);
        data[1].push(Math.max(0, (pages - last.pages) / (t - last.t)));
        plot.setData(data);
        if (plot.cursor.idx == null) latest(plot);
      }
      last = { pages, t };
    },
    destroy() { plot.destroy(); },
  };
}

function statsCards(job) {
  const s = job.stats || {};
  const f = job.frontier || {};
  const card = (label, value, id) => h("div", { class: "card", id }, h("span", { class: "card-label" }, label), h("span", { class: "card-value" }, value));
  return h("div", { class: "cards" },
    card("Status", statusBadge(job.status), "card-status"),
    card("Responses", fmt(s.pages ?? 0), "card-pages"),
    card(TERMINAL.has(job.status) ? "Responses/s, average" : "Responses/s", rateOf(job).text, "card-rate"),
    card("Queue", fmt(f.queued ?? s.queue_length ?? 0), "card-queue"),
    card("Leases in flight", fmt(f.leased ?? s.leases_in_flight ?? 0), "card-leases"),
    // The crawler's ERROR log lines: pages that answered 4xx/5xx or failed are in
    // "What it fetched" below, not here.
    card("Errors logged", fmt(s.errors ?? 0), "card-errors"),
    card("Items", fmt(s.items ?? 0), "card-items"));
}

function summaryView(box, jobId) {
  get(`/api/v1/jobs/${jobId}/summary`).then((sm) => clear(box,
    h("h2", {}, "What it fetched"),
    table("Pages by status class", [{ label: "Class", cell: (r) => r[0] }, { label: "Pages", cell: (r) => fmt(r[1]) }],
      Object.entries(sm.pages_by_status)),
    sm.redirects ? h("p", { id: "redirects" }, `${fmt(sm.redirects)} redirects followed: each page is counted once, where it landed.`) : null,
    table("Errors by cause, most frequent first", [
      { label: "Cause", cell: (r) => r.cause }, { label: "Meaning", cell: (r) => r.meaning },
      { label: "Count", cell: (r) => fmt(r.count) }, { label: "Example", cell: (r) => link(r.example_url) },
      { label: "Error", cell: (r) => shown(r.example_error || "", 200) }], sm.errors, "No errors."),
    table("robots.txt decisions", [
      { label: "Decision", cell: (r) => r.decision }, { label: "robots.txt status", cell: (r) => r.robots_status ?? "–" },
      { label: "URLs", cell: (r) => fmt(r.count) }, { label: "Example", cell: (r) => link(r.example_url) }], sm.robots, "robots.txt kept nothing out."),
    table("Crawl events", [
      { label: "Kind", cell: (r) => r.kind }, { label: "Count", cell: (r) => fmt(r.count) },
      { label: "Example", cell: (r) => (r.example_url ? link(r.example_url) : "–") }, { label: "Detail", cell: (r) => shown(r.detail, 200) }], sm.events, "No events."),
    sm.cap ? h("p", { class: "notice" }, sm.cap.message, " ", h("code", {}, sm.cap.command)) : null,
  )).catch((e) => clear(box, h("p", { class: "error" }, e.message)));
}

function linksOf(box, jobId, url) {
  clear(box, h("h3", {}, "Links of ", link(url)), h("p", {}, "Loading…"));
  Promise.all([
    get(`/api/v1/jobs/${jobId}/links` + query({ url_prefix: url, limit: 200 })),
    get(`/api/v1/jobs/${jobId}/links` + query({ target_prefix: url, limit: 200 })),
  ]).then(([out, inc]) => clear(box, h("h3", {}, "Links of ", link(url)),
    table("Outgoing links", [{ label: "Target", cell: (r) => link(r.target_url) }, { label: "Anchor text", cell: (r) => shown(r.anchor_text, 200) },
      { label: "Count", cell: (r) => fmt(r.count) }, { label: "nofollow", cell: (r) => (r.nofollow ? "yes" : "") }],
    out.items.filter((r) => r.source_url === url), "No outgoing links."),
    table("Incoming links", [{ label: "Source", cell: (r) => link(r.source_url) }, { label: "Anchor text", cell: (r) => shown(r.anchor_text, 200) },
      { label: "Count", cell: (r) => fmt(r.count) }],
    inc.items.filter((r) => r.target_url === url), "No incoming links.")))
    .catch((e) => clear(box, h("p", { class: "error" }, e.message)));
}

function pagesView(box, jobId) {
  const prefix = h("input", { id: "pages-prefix", name: "url_prefix", type: "search", placeholder: "https://…" });
  const status = h("input", { id: "pages-status", name: "status", type: "number", min: 0, max: 999 });
  const results = h("div", { id: "pages-table" });
  const linksBox = h("div", { id: "page-links" });
  const cursors = [];
  let cursor = "";
  const load = async () => {
    try {
      const page = await get(`/api/v1/jobs/${jobId}/pages` + query({ url_prefix: prefix.value, status: status.value, cursor, limit: 50 }));
      clear(results, table("Pages", [
        { label: "URL", cell: (p) => (p.final_url && p.final_url !== p.url
          ? [link(p.url), h("br"), "→ ", link(p.final_url)] : link(p.url)) },
        { label: "Title", cell: (p) => h("span", { title: shown(p.title || "", 2000) }, shown(p.title || "", 120)) },
        { label: "Status", cell: (p) => String(p.status) },
        { label: "Depth", cell: (p) => String(p.depth) },
        { label: "Size", cell: (p) => fmt(p.size) },
        { label: "Error", cell: (p) => shown(p.error || "", 120) },
        { label: "", cell: (p) => h("button", { type: "button", onclick: () => linksOf(linksBox, jobId, p.url),
          "aria-label": `Links of ${shown(p.url, 100)}` }, "Links") },
      ], page.items, "No pages match."),
      h("nav", { class: "pager", "aria-label": "Pages of the pages table" },
        cursors.length ? h("button", { type: "button", onclick: () => { cursor = cursors.pop(); load(); } }, "Previous") : null,
        page.next_cursor ? h("button", { type: "button", onclick: () => { cursors.push(cursor); cursor = page.next_cursor; load(); } }, "Next") : null));
    } catch (e) {
      clear(results, h("p", { class: "error", role: "alert" }, e.message));
    }
  };
  const form = h("form", { class: "filters", role: "search" },
    h("label", { for: "pages-prefix" }, "URL starts with"), prefix,
    h("label", { for: "pages-status" }, "HTTP status"), status,
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => { e.preventDefault(); cursor = ""; cursors.length = 0; load(); });
  clear(box, h("h2", {}, "Pages"), form, results, linksBox);
  load();
}

function graphView(box, jobId) {
  const level = h("select", { id: "build-level", name: "level" }, LEVELS.map((l) => h("option", { value: l }, l)));
  const metrics = METRICS.map((m) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "metrics", value: m, checked: DEFAULT_METRICS.has(m) }), ` ${m}`));
  const progress = h("p", { id: "build-progress", role: "status" });
  const known = h("ul", { id: "builds" }, builds(jobId).map((b) =>
    h("li", {}, h("a", { href: `#/graphs/${b.id}` }, `${b.level} graph ${b.id.slice(0, 8)}`), " · ", h("a", { href: `#/graphs/${b.id}/top` }, "top pages"))));
  const form = h("form", { class: "build" }, h("label", { for: "build-level" }, "Level"), level,
    h("fieldset", {}, h("legend", {}, "Metrics"), metrics), h("button", { type: "submit", id: "build-graph" }, "Build the graph"), progress);
  let timer = null;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = metrics.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    try {
      let build = await post(`/api/v1/jobs/${jobId}/graphs`, { level: level.value, metrics: chosen });
      remember(jobId, build);
      const poll = async () => {
        build = await get(`/api/v1/graphs/${build.id}`);
        if (build.status === "done") {
          clear(progress, `Built: ${fmt(build.node_count)} nodes, ${fmt(build.edge_count)} edges. `,
            h("a", { href: `#/graphs/${build.id}`, id: "open-network" }, "Open the network"), " · ",
            h("a", { href: `#/graphs/${build.id}/top` }, "Top pages"));
          announce("The graph is built.");
        } else if (build.status === "failed") {
          progress.textContent = `The build failed: ${build.error}`;
        } else {
          progress.textContent = `Build ${build.status}${build.step ? `: ${build.step}` : ""}…`;
          timer = setTimeout(poll, 700);
        }
      };
      poll();
    } catch (err) {
      progress.textContent = err instanceof ApiError ? err.message : String(err);
    }
  });
  clear(box, h("h2", {}, "Network"), form, builds(jobId).length ? h("h3", {}, "Earlier builds") : null, known);
  return () => clearTimeout(timer);
}

// The tail of each crawler process's log (GET /jobs/{id}/log), as text, on request.
function logView(box, jobId) {
  const out = h("div", { id: "log-tail" });
  const load = async () => {
    clear(out, h("p", {}, "Reading the logs…"));
    try {
      const log = await get(`/api/v1/jobs/${jobId}/log${query({ max_bytes: 65536 })}`);
      clear(out, log.processes.length ? log.processes.map((p) => [
        h("h3", {}, `Process ${p.jobid} (scrapyd node ${p.node})`),
        p.text === null ? h("p", {}, "No log yet.") : [
          p.truncated ? h("p", {}, "The last 64 KiB:") : null,
          h("pre", { class: "log", tabindex: 0, "aria-label": `The log of process ${p.jobid}` }, p.text)],
      ]) : h("p", {}, "No crawler process was started."));
    } catch (e) {
      clear(out, h("p", { class: "error", role: "alert" }, e.message));
    }
  };
  clear(box, h("h2", {}, "Crawler log"),
    h("button", { type: "button", id: "load-log", onclick: load }, "Show the end of the log"), out);
}

export function jobView(main, jobId) {
  let source = null;
  let plot = null;
  const head = h("div", { class: "job-head" });
  const live = h("section", { "aria-label": "Progress" });
  const chartBox = h("div", { class: "chart", id: "rate-chart" });
  const summaryBox = h("section", { id: "summary" });
  const pagesBox = h("section", { id: "pages" });
  const graphBox = h("section", { id: "graph" });
  const paramsBox = h("section", { id: "params" });
  const logBox = h("section", { id: "log" });
  clear(main, head, live, chartBox, graphBox, summaryBox, pagesBox, paramsBox, logBox);
  let stopGraph = null;
  const show = (job) => {
    clear(head, h("h1", {}, "Job ", h("code", {}, job.id)),
      h("p", {}, `${job.spider} spider · created ${when(job.created_at)}`,
        job.finished_at ? ` · ended ${when(job.finished_at)}` : "",
        job.close_reason ? ` · ${job.close_reason}` : ""),
      job.error ? h("p", { class: "error" }, shown(job.error, 500)) : null,
      TERMINAL.has(job.status) ? h("button", { type: "button", class: "danger", id: "delete-job", onclick: async () => {
        try { if (await deleteJob(job.id)) { announce("Job deleted."); location.hash = "#/jobs"; } } catch (e) { window.alert(e.message); }
      } }, "Delete this job") : h("button", { type: "button", class: "danger", id: "cancel-job", onclick: async () => {
        try { const done = await cancelJob(job.id); if (done) { show(done); announce("Job cancelled."); } } catch (e) { window.alert(e.message); }
      } }, "Cancel this job"));
    clear(live, statsCards(job));
  };
  (async () => {
    let job;
    try { job = await get(`/api/v1/jobs/${jobId}`); } catch (e) {
      clear(main, h("h1", {}, "Job not found"), h("p", { class: "error", role: "alert" }, e.message));
      return;
    }
    show(job);
    clear(paramsBox, h("h2", {}, "Parameters and settings"),
      h("pre", { class: "params", tabindex: 0, "aria-label": "The job's parameters and settings as JSON" }, JSON.stringify({ params: job.params, settings: job.settings, tags: job.tags, workers: job.workers, priority: job.priority }, null, 2)));
    if (TERMINAL.has(job.status)) {
      const seconds = (Date.parse(job.finished_at || job.updated_at) - Date.parse(job.started_at || job.created_at)) / 1000;
      const rate = seconds > 0 ? (job.stats.pages ?? 0) / seconds : null;
      clear(chartBox, h("p", {}, `Average rate: ${fmt(rate, 1)} pages/s over ${fmt(seconds, seconds < 10 ? 1 : 0)} s (the chart draws while a job runs).`));
    } else {
      plot = chart(chartBox);
      plot.add(job.stats.pages ?? 0);
    }
    summaryView(summaryBox, jobId);
    pagesView(pagesBox, jobId);
    logView(logBox, jobId);
    stopGraph = graphView(graphBox, jobId);
    if (!TERMINAL.has(job.status)) {
      source = followJob(job, (current) => {
        show(current);
        if (plot) plot.add(current.stats.pages ?? 0);
        if (TERMINAL.has(current.status)) {
          announce(`The job is ${current.status}.`);
          get(`/api/v1/jobs/${jobId}`).then(show).catch(() => {});
          summaryView(summaryBox, jobId);
          pagesView(pagesBox, jobId);
        }
      });
    }
  })();
  return () => { if (source) source.close(); if (plot) plot.destroy(); if (stopGraph) stopGraph(); };
}
