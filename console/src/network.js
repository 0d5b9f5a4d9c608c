// The network view: a finished build drawn with sigma.js (WebGL) over a graphology
// graph, laid out by ForceAtlas2 in a web worker (layoutworker.js). Node size by a
// metric (PageRank by default), colour by community, host or component with a legend,
// search, hover labels, a node's details with its neighbours highlighted, filters,
// zoom, a PNG snapshot and every export. Labels are drawn on a canvas as text.
//
// A graph of many edges (over BIG_EDGES) is drawn for speed: its edges as one-pixel
// GL lines (no antialiased quads: a software renderer fills far fewer pixels), hidden
// while the camera moves, and drawn once the layout is done rather than at each of
// its steps (its nodes move meanwhile). A graph of many nodes (over BIG_NODES) draws
// them as GL points (one vertex each, not an instanced triangle: a software renderer
// drew 10,000 triangles ten times slower) and leaves the picking layer (the hidden
// drawing that finds the node under the pointer) alone while the camera moves; the
// frame that ends the move draws edges, labels and the picking layer again.
import Graph from "graphology";
import Sigma from "sigma";
import { EdgeLineProgram, NodePointProgram } from "sigma/rendering";
import { get, query } from "./api.js";
import { clear, fmt, h, link, shown } from "./dom.js";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
  "#e377c2", "#bcbd22", "#393b79", "#637939"];
const OTHER = "#9a9a9a";
const LIMITS = [1000, 5000, 10000, 20000];
const BIG_EDGES = 20000;
const BIG_NODES = 2000;

// Whether the camera is moving, as sigma tells it when it hides edges on move.
function moving(renderer) {
  const mouse = renderer.getMouseCaptor();
  return renderer.getCamera().isAnimated() || mouse.isMoving || mouse.draggedEvents > 0
    || mouse.currentWheelDirection !== 0;
}

// Edges as lines, drawn only when the camera is still. Sigma's own hideEdgesOnMove
// refreshes the whole graph (every reducer, every edge) when a drag is released,
// while the inertia moves the camera: a frame of a third of a second here.
class StillEdgeLineProgram extends EdgeLineProgram {
  render(params) {
    if (!moving(this.renderer)) super.render(params);
  }
}

// Nodes as points; while the camera moves, without their picking pass (it draws every
// node a second time; the still frame after the move draws it again).
class MovingNodePointProgram extends NodePointProgram {
  render(params) {
    if (!moving(this.renderer)) { super.render(params); return; }
    const pick = this.pickProgram;
    this.pickProgram = null;
    try { super.render(params); } finally { this.pickProgram = pick; }
  }
}
const EXPORTS = [["GEXF (Gephi)", "gexf"], ["GraphML", "graphml"], ["JSON node-link", "json"],
  ["CSV nodes", "csv", "nodes"], ["CSV edges", "csv", "edges"]];

function hostOf(label, level) {
  if (level !== "page") return label;
  try { return new URL(label).host; } catch { return "?"; }
}

// Colours by the values of a column (`hosts`: the host of each label, for "host").
function categories(drawing, by, hosts) {
  const n = drawing.labels.length;
  const values = by === "host" ? hosts : (drawing.columns[by] || new Array(n).fill(0)).map(String);
  const counts = new Map();
  values.forEach((v) => counts.set(v, (counts.get(v) || 0) + 1));
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const colour = new Map(top.map(([v], i) => [v, PALETTE[i]]));
  const legend = top.map(([v, c]) => ({ value: v, count: c, colour: colour.get(v) }));
  const rest = n - top.reduce((s, [, c]) => s + c, 0);
  if (rest > 0) legend.push({ value: "other", count: rest, colour: OTHER });
  return { colours: values.map((v) => colour.get(v) || OTHER), legend };
}

// Radius by the metric's square root, from 2 pixels to a largest that shrinks with
// the node count (16 up to 400 nodes, under 8 at 2,500, 6 from 4,900), so that a dense
// drawing of nodes of even rank is not one blot.
function sizes(drawing, metric) {
  const col = drawing.columns[metric] || drawing.labels.map(() => 1);
  const max = Math.max(...col, 1e-12);
  const top = Math.max(4, Math.min(14, 14 * Math.sqrt(400 / Math.max(1, col.length))));
  return col.map((v) => 2 + top * Math.sqrt(Math.max(0, v) / max));
}

export function networkView(main, buildId, params) {
  let renderer = null;
  let worker = null;
  const limitSelect = h("select", { id: "net-limit", name: "limit" },
    LIMITS.map((l) => h("option", { value: l, selected: l === Number(params.get("limit") || 10000) }, fmt(l))));
  limitSelect.addEventListener("change", () => { location.hash = `#/graphs/${buildId}?limit=${limitSelect.value}`; });
  const status = h("p", { id: "net-status", role: "status" }, "Loading the graph…");
  const notice = h("p", { id: "net-notice", class: "notice", hidden: true });
  const stage = h("div", { id: "network", class: "network", role: "img", "aria-label": "The network drawing" });
  const side = h("aside", { class: "net-side", "aria-label": "Network controls" });
  const exports = h("p", { class: "exports" }, "Download: ", EXPORTS.map(([label, format, tbl]) =>
    h("a", { class: "button", download: "", href: `/api/v1/graphs/${buildId}/export` + query({ format, table: tbl }), dataset: { format: tbl ? `${format}-${tbl}` : format } }, label)));
  clear(main, h("h1", {}, "Network ", h("code", {}, buildId.slice(0, 8))),
    h("p", {}, h("a", { href: `#/graphs/${buildId}/top` }, "Top pages table"), " · ",
      h("label", { for: "net-limit" }, "Draw at most "), limitSelect, " nodes"),
    exports, status, notice, h("div", { class: "net-layout" }, stage, side));

  (async () => {
    const build = await get(`/api/v1/graphs/${buildId}`);
    if (build.status !== "done") {
      status.textContent = `The build is ${build.status}${build.error ? `: ${build.error}` : ""}. Open this page again when it is done.`;
      return;
    }
    const drawing = await get(`/api/v1/graphs/${buildId}/drawing` + query({ limit: limitSelect.value }));
    const n = drawing.labels.length;
    if (drawing.truncated) {
      notice.hidden = false;
      notice.textContent = `This ${drawing.level} graph has ${fmt(drawing.node_count)} nodes: drawn here are the top ${fmt(n)} by ${drawing.ranked_by}, with the edges among them. Download an export for all of it, or build the host graph.`;
    }
    const hosts = drawing.labels.map((l) => hostOf(l, drawing.level));
    // Page labels on screen: the path alone when every page is on one host.
    const oneHost = drawing.level === "page" && new Set(hosts).size === 1;
    const onScreen = (l) => {
      if (!oneHost) return l;
      try { const u = new URL(l); return u.pathname + u.search; } catch { return l; }
    };
    const graph = new Graph({ type: "directed", allowSelfLoops: false });
    const metricNames = ["pagerank", "in_degree", "out_degree", "kcore"].filter((m) => drawing.columns[m]);
    const colourNames = ["community", "host", "component", "strong_component"].filter((c) => c === "host" || drawing.columns[c]);
    const sizeBy = metricNames.includes("pagerank") ? "pagerank" : metricNames[0];
    const colourBy = colourNames[0];
    const s = sizes(drawing, sizeBy);
    const c = categories(drawing, colourBy, hosts);
    // A golden-angle spiral by rank: deterministic, the most central nodes in the middle.
    for (let i = 0; i < n; i++) {
      const r = Math.sqrt(i + 1) * 10;
      const a = i * 2.39996;
      graph.addNode(String(i), { label: onScreen(drawing.labels[i]), x: r * Math.cos(a), y: r * Math.sin(a), size: s[i], color: c.colours[i] });
    }
    const e = drawing.edges;
    for (let k = 0; k < e.length; k += 2) {
      if (e[k] !== e[k + 1]) graph.mergeEdge(String(e[k]), String(e[k + 1]));
    }
    const state = { selected: null, neighbours: new Set(), minDegree: 0, minCore: 0, hideUncrawled: false };
    const degree = drawing.labels.map((_, i) => (drawing.columns.in_degree?.[i] ?? 0) + (drawing.columns.out_degree?.[i] ?? 0));
    const hidden = (i) => degree[i] < state.minDegree || (drawing.columns.kcore?.[i] ?? 0) < state.minCore
      || (state.hideUncrawled && drawing.columns.crawled && !drawing.columns.crawled[i]);
    const big = graph.size > BIG_EDGES;
    let layingOut = big;
    const many = graph.order > BIG_NODES;
    renderer = new Sigma(graph, stage, {
      defaultEdgeColor: "#c8c8c8", hideLabelsOnMove: many,
      ...(big ? { edgeProgramClasses: { line: StillEdgeLineProgram } } : {}),
      ...(many ? { nodeProgramClasses: { circle: MovingNodePointProgram } } : {}),
      labelRenderedSizeThreshold: many ? 12 : 9,
      zIndex: true,
      nodeReducer: (node, attrs) => {
        const i = Number(node);
        const out = { ...attrs };
        if (hidden(i)) out.hidden = true;
        if (state.selected !== null) {
          if (node === state.selected) { out.highlighted = true; out.zIndex = 2; }
          else if (state.neighbours.has(node)) { out.zIndex = 1; out.forceLabel = state.neighbours.size < 30; }
          else { out.color = "#e4e4e4"; out.label = ""; out.zIndex = 0; }
        }
        return out;
      },
      edgeReducer: (edge, attrs) => {
        const out = { ...attrs };
        if (layingOut) out.hidden = true;
        else if (state.selected !== null) {
          const [a, b] = graph.extremities(edge);
          if (a === state.selected || b === state.selected) { out.color = "#555"; out.size = 1.5; } else out.hidden = true;
        }
        return out;
      },
    });
    if (big) {
      // A drag released after the pointer stopped moves the camera no more: draw the
      // edges then (sigma's hideEdgesOnMove refreshed everything for this).
      const mouse = renderer.getMouseCaptor();
      mouse.on("mouseup", () => setTimeout(() => renderer.scheduleRender(), 0));
    }
    window.crawlgraphNetwork = { graph, renderer, drawing };
    stage.dataset.nodes = String(graph.order);
    stage.dataset.edges = String(graph.size);
    status.textContent = `Drawn: ${fmt(graph.order)} nodes, ${fmt(graph.size)} edges. Laying out…`
      + (big ? " (the edges are drawn once it is done)" : "");

    const details = h("section", { id: "node-details", "aria-live": "polite" }, h("h2", {}, "Node"), h("p", {}, "Click a node to see it and its neighbours."));
    const select = (node) => {
      state.selected = node;
      state.neighbours = node === null ? new Set() : new Set(graph.neighbors(node));
      renderer.refresh({ skipIndexation: true });
      if (node === null) { clear(details, h("h2", {}, "Node"), h("p", {}, "Click a node to see it and its neighbours.")); return; }
      const i = Number(node);
      const row = (label, v) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, v));
      const neighbourList = (nodes, title) => h("div", {}, h("h3", {}, `${title} (${nodes.length})`),
        h("ul", { class: "neighbours" }, nodes.slice(0, 50).map((m) => h("li", {},
          h("button", { type: "button", class: "linkish", onclick: () => focus(m) }, shown(graph.getNodeAttribute(m, "label"), 120))))));
      clear(details, h("h2", {}, "Node"),
        h("p", { class: "node-label" }, drawing.level === "page" ? link(drawing.labels[i]) : shown(drawing.labels[i])),
        h("table", {}, h("caption", {}, "Metrics"), h("tbody", {}, Object.keys(drawing.columns).map((k) => row(k, fmt(drawing.columns[k][i], 6))))),
        neighbourList(graph.outNeighbors(node), "Links to"), neighbourList(graph.inNeighbors(node), "Linked from"));
    };
    const focus = (node) => {
      select(node);
      const d = renderer.getNodeDisplayData(node);
      if (d) renderer.getCamera().animate({ x: d.x, y: d.y, ratio: 0.3 }, { duration: 400 });
    };
    renderer.on("clickNode", ({ node }) => select(node));
    renderer.on("clickStage", () => select(null));

    const search = h("input", { id: "net-search", type: "search", name: "q", placeholder: "part of a URL" });
    const searchMsg = h("p", { id: "net-search-result", role: "status" });
    const searchForm = h("form", { role: "search" }, h("label", { for: "net-search" }, "Find a node"), search, h("button", { type: "submit" }, "Find"), searchMsg);
    searchForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = search.value.trim();
      if (!q) return;
      let found = drawing.labels.indexOf(q);
      if (found < 0) found = drawing.labels.findIndex((l) => l.includes(q));
      if (found < 0) { searchMsg.textContent = "No node matches."; return; }
      searchMsg.textContent = `Found: ${shown(drawing.labels[found], 120)}`;
      focus(String(found));
    });

    const sizeSelect = h("select", { id: "net-size" }, metricNames.map((m) => h("option", { value: m, selected: m === sizeBy }, m)));
    sizeSelect.addEventListener("change", () => { const ss = sizes(drawing, sizeSelect.value); graph.forEachNode((k) => graph.setNodeAttribute(k, "size", ss[Number(k)])); });
    const colourSelect = h("select", { id: "net-colour" }, colourNames.map((m) => h("option", { value: m, selected: m === colourBy }, m)));
    const legendBox = h("div", { id: "legend" });
    // Swatch colours are set as properties (no style attribute: the CSP forbids them).
    const drawLegend = (cat, by) => {
      clear(legendBox, h("h2", {}, `Colour: ${by}`), h("ul", { class: "legend" }, cat.legend.map((l) =>
        h("li", {}, h("span", { class: "swatch", dataset: { colour: l.colour } }), ` ${shown(l.value, 60)} (${fmt(l.count)})`))));
      legendBox.querySelectorAll(".swatch").forEach((sw) => { sw.style.backgroundColor = sw.dataset.colour; });
    };
    colourSelect.addEventListener("change", () => {
      const cc = categories(drawing, colourSelect.value, hosts);
      graph.forEachNode((k) => graph.setNodeAttribute(k, "color", cc.colours[Number(k)]));
      drawLegend(cc, colourSelect.value);
    });
    drawLegend(c, colourBy);

    const minDeg = h("input", { id: "net-min-degree", type: "number", min: 0, value: 0 });
    const minCore = h("input", { id: "net-min-kcore", type: "number", min: 0, value: 0 });
    const uncrawled = h("input", { id: "net-hide-uncrawled", type: "checkbox" });
    const apply = () => {
      state.minDegree = Number(minDeg.value) || 0; state.minCore = Number(minCore.value) || 0; state.hideUncrawled = uncrawled.checked;
      renderer.refresh();
      let shownCount = 0; for (let i = 0; i < n; i++) if (!hidden(i)) shownCount++;
      stage.dataset.visible = String(shownCount);
      filterMsg.textContent = `${fmt(shownCount)} of ${fmt(n)} nodes shown.`;
    };
    const filterMsg = h("p", { role: "status", id: "net-filter-result" });
    [minDeg, minCore, uncrawled].forEach((el) => el.addEventListener("change", apply));
    const cam = renderer.getCamera();
    const zoom = h("p", { class: "zoom" },
      h("button", { type: "button", onclick: () => cam.animatedZoom({ duration: 200 }), "aria-label": "Zoom in" }, "+"),
      h("button", { type: "button", onclick: () => cam.animatedUnzoom({ duration: 200 }), "aria-label": "Zoom out" }, "−"),
      h("button", { type: "button", onclick: () => cam.animatedReset({ duration: 200 }) }, "Reset view"),
      h("button", { type: "button", id: "net-png", onclick: () => snapshot(renderer, buildId) }, "PNG snapshot"));
    const labelHint = h("p", { class: "help", id: "net-label-hint" },
      "Labels are drawn for the larger nodes; zoom in to see more, or point at a node.");
    clear(side, searchForm, zoom, labelHint,
      h("div", { class: "field" }, h("label", { for: "net-size" }, "Size by"), sizeSelect),
      h("div", { class: "field" }, h("label", { for: "net-colour" }, "Colour by"), colourSelect),
      h("fieldset", {}, h("legend", {}, "Filters"),
        h("label", { for: "net-min-degree" }, "Minimum degree"), minDeg,
        drawing.columns.kcore ? [h("label", { for: "net-min-kcore" }, "Minimum k-core"), minCore] : null,
        drawing.columns.crawled ? h("label", { class: "check", for: "net-hide-uncrawled" }, uncrawled, " Hide pages not crawled") : null,
        filterMsg),
      legendBox, details);

    worker = new Worker("/console/layout.js", { type: "module" });
    const x = new Float32Array(n); const y = new Float32Array(n);
    graph.forEachNode((k, a) => { x[Number(k)] = a.x; y[Number(k)] = a.y; });
    const iterations = n > 5000 ? 60 : n > 1000 ? 150 : 300;
    worker.onmessage = ({ data }) => {
      graph.updateEachNodeAttributes((k, a) => { a.x = data.x[Number(k)]; a.y = data.y[Number(k)]; return a; }, { attributes: ["x", "y"] });
      if (data.done >= data.iterations) {
        if (layingOut) { layingOut = false; renderer.refresh(); }
        status.textContent = `Drawn: ${fmt(graph.order)} nodes, ${fmt(graph.size)} edges, laid out by ForceAtlas2 (${data.iterations} iterations).`;
        stage.dataset.layout = "done";
      }
    };
    worker.postMessage({ n, edges: Int32Array.from(e), x, y, iterations });
    const wanted = params.get("node");
    if (wanted !== null && graph.hasNode(wanted)) focus(wanted);
  })().catch((err) => { status.textContent = err.message; });

  return () => {
    if (worker) { worker.postMessage({ stop: true }); worker.terminate(); }
    if (renderer) renderer.kill();
    delete window.crawlgraphNetwork;
  };
}

function snapshot(renderer, buildId) {
  renderer.refresh();
  const layers = renderer.getCanvases();
  const first = Object.values(layers)[0];
  const out = document.createElement("canvas");
  out.width = first.width; out.height = first.height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, out.width, out.height);
  for (const name of ["edges", "nodes", "edgeLabels", "labels", "hovers", "hoverNodes"]) {
    if (layers[name]) ctx.drawImage(layers[name], 0, 0);
  }
  out.toBlob((blob) => {
    const a = h("a", { href: URL.createObjectURL(blob), download: `network-${buildId}.png` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, "image/png");
}
