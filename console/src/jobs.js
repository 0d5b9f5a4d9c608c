// The jobs list: status and tag filters, cursor pagination, and live rows (each
// unfinished job on the page follows its event stream).
import { ApiError, del, get, post, query } from "./api.js";
import { announce, clear, fmt, h, shown, when } from "./dom.js";

export const STATUSES = ["pending", "running", "finished", "failed", "cancelled"];
export const TERMINAL = new Set(["finished", "failed", "cancelled"]);

// The live rate while a job runs; once it has ended, its average over the crawl (the
// live rate of an ended job is 0, which reads like a stall).
export function rateOf(job) {
  const s = job.stats || {};
  if (!TERMINAL.has(job.status)) return { text: fmt(s.pages_per_s, 1), title: "now" };
  const seconds = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
  if (!(seconds > 0)) return { text: "–", title: "the crawl did not run" };
  return { text: fmt((s.pages ?? 0) / seconds, 1), title: "average over the crawl" };
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

// Follows a job's event stream: `onJob` gets the job updated by each `state` event; the
// stream is closed once the job has ended.
export function followJob(job, onJob) {
  const source = new EventSource(`/api/v1/jobs/${job.id}/events`);
  source.addEventListener("state", (ev) => {
    job = { ...job, ...JSON.parse(ev.data) };
    if (TERMINAL.has(job.status)) source.close();
    onJob(job);
  });
  return source;
}

export async function cancelJob(id) {
  if (!window.confirm(`Cancel job ${id}? Its crawler processes are stopped.`)) return null;
  return post(`/api/v1/jobs/${id}/cancel`);
}

// Deletes a job that has ended, once confirmed: gone at once, purged in the background.
export async function deleteJob(id) {
  if (!window.confirm(`Delete job ${id}? Its pages, links, archives and graphs are removed for good.`)) return null;
  return del(`/api/v1/jobs/${id}`);
}

export function jobsView(main, session, params) {
  const status = params.get("status") || "";
  const tag = params.get("tag") || "";
  const cursor = params.get("cursor") || "";
  const streams = [];
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const tagInput = h("input", { id: "filter-tag", name: "tag", value: tag, pattern: "[A-Za-z0-9_.:-]*" });
  const filters = h("form", { class: "filters", role: "search" },
    h("label", { for: "filter-status" }, "Status"), statusSelect,
    h("label", { for: "filter-tag" }, "Tag"), tagInput,
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/jobs" + query({ status: statusSelect.value, tag: tagInput.value.trim() });
  });
  const body = h("div", { id: "jobs" }, h("p", {}, "Loading jobs…"));
  clear(main, h("h1", {}, session.role === "admin" ? "All jobs" : "Your jobs"),
    h("p", {}, h("a", { href: "#/submit", class: "button" }, "New crawl")), filters, body);

  (async () => {
    let page;
    try {
      page = await get("/api/v1/jobs" + query({ status, tag, cursor, limit: 25 }));
    } catch (e) {
      clear(body, h("p", { class: "error", role: "alert" }, e.message));
      return;
    }
    const rows = page.items.map((job) => {
      const row = h("tr", { dataset: { job: job.id } });
      const fill = (j) => clear(row,
        h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.id.slice(0, 8))),
        h("td", {}, j.spider),
        h("td", { class: "cell-status" }, statusBadge(j.status)),
        h("td", { class: "num cell-pages" }, fmt(j.stats.pages ?? 0)),
        h("td", { class: "num cell-rate", title: rateOf(j).title }, rateOf(j).text),
        h("td", { class: "num" }, fmt(j.stats.errors ?? 0)),
        h("td", {}, shown((j.params.start_urls || []).join(" "), 80)),
        h("td", {}, j.tags.join(", ")),
        h("td", {}, when(j.created_at)),
        h("td", {}, TERMINAL.has(j.status) ? "" : h("button", {
          type: "button", class: "danger", "aria-label": `Cancel job ${j.id}`,
          onclick: async () => {
            try { const done = await cancelJob(j.id); if (done) { fill(done); announce(`Job ${j.id} cancelled.`); } }
            catch (e) { window.alert(e instanceof ApiError ? e.message : String(e)); }
          } }, "Cancel")));
      fill(job);
      if (!TERMINAL.has(job.status) && streams.length < 25) streams.push(followJob(job, fill));
      return row;
    });
    const cols = ["Job", "Spider", "Status", "Pages", "Pages/s", "Errors", "Start URLs", "Tags", "Created", ""];
    clear(body, h("table", { class: "jobs" },
      h("caption", {}, `${page.items.length} job${page.items.length === 1 ? "" : "s"} on this page`),
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: cols.length }, "No jobs yet.")))),
    h("nav", { class: "pager", "aria-label": "Pages of jobs" },
      cursor ? h("a", { href: "#/jobs" + query({ status, tag }) }, "First page") : null,
      page.next_cursor ? h("a", { href: "#/jobs" + query({ status, tag, cursor: page.next_cursor }) }, "Next page") : null));
  })();
  return () => streams.forEach((s) => s.close());
}
