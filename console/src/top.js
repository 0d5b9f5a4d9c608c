// Top pages: a build's nodes by any computed metric, sortable, each linked to the network view.
import { get, query } from "./api.js";
import { clear, fmt, h, link, shown } from "./dom.js";

const SORTS = ["pagerank", "in_degree", "out_degree", "hub", "authority", "betweenness", "closeness", "kcore", "community", "pages"];

export function topView(main, buildId) {
  let sort = "pagerank"; let order = "desc"; let offset = 0;
  const box = h("div", { id: "top-table" });
  clear(main, h("h1", {}, "Top nodes of ", h("code", {}, buildId.slice(0, 8))),
    h("p", {}, h("a", { href: `#/graphs/${buildId}` }, "Back to the network")), box);
  const load = async () => {
    let page;
    try { page = await get(`/api/v1/graphs/${buildId}/nodes` + query({ sort, order, limit: 50, offset })); }
    catch (e) { clear(box, h("p", { class: "error", role: "alert" }, e.message)); return; }
    const cols = SORTS.filter((k) => page.nodes.some((nd) => nd[k] !== undefined));
    const head = (k) => h("th", { scope: "col", "aria-sort": k === sort ? (order === "desc" ? "descending" : "ascending") : "none" },
      h("button", { type: "button", class: "linkish", onclick: () => { order = k === sort && order === "desc" ? "asc" : "desc"; sort = k; offset = 0; load(); } },
        k, k === sort ? (order === "desc" ? " ↓" : " ↑") : ""));
    clear(box, h("table", {}, h("caption", {}, `Nodes ${offset + 1}–${offset + page.nodes.length} by ${sort} (${order})`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Node"), cols.map(head), h("th", { scope: "col" }, "In the network"))),
      h("tbody", {}, page.nodes.map((nd, i) => h("tr", {}, h("td", {}, String(offset + i + 1)),
        h("td", {}, /^https?:/i.test(nd.label) ? link(nd.label) : shown(nd.label)),
        cols.map((k) => h("td", { class: "num" }, fmt(nd[k], 6))),
        h("td", {}, h("a", { href: `#/graphs/${buildId}?node=${nd.node_id}`, "aria-label": `Show ${shown(nd.label, 80)} in the network` }, "show")))))),
    h("nav", { class: "pager", "aria-label": "Pages of nodes" },
      offset ? h("button", { type: "button", onclick: () => { offset = Math.max(0, offset - 50); load(); } }, "Previous") : null,
      page.nodes.length === 50 ? h("button", { type: "button", onclick: () => { offset += 50; load(); } }, "Next") : null));
  };
  load();
  return null;
}
