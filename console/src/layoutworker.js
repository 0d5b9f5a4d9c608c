// The ForceAtlas2 layout, in a web worker so that the page stays responsive: it takes
// the node count, the edges (flat index pairs) and the starting positions, and posts
// the positions back about every POST_MS until it has run `iterations` or is told to
// stop. It builds the layout's matrices once and keeps its state (each node's speed
// and convergence) from step to step, where the library's `assign` would build them
// again and start from rest at every call. Served from this origin (CSP worker-src
// 'self'), not from a blob.
import forceAtlas2 from "graphology-layout-forceatlas2";
import DEFAULTS from "graphology-layout-forceatlas2/defaults.js";
import iterate from "graphology-layout-forceatlas2/iterate.js";

const PPN = 10; // numbers per node in the library's node matrix: x, y, dx, dy, ..., mass
const PPE = 3; // per edge: source offset, target offset, weight
const POST_MS = 150;

let running = false;

// The library's matrices for `n` nodes at (x, y) and the edges, self-loops and repeats
// left out, each node's mass one more than its degree (as graphToByteArrays makes them).
function matrices(n, edges, x, y) {
  const seen = new Set();
  const pairs = [];
  for (let e = 0; e < edges.length; e += 2) {
    const a = edges[e], b = edges[e + 1];
    const key = a * n + b;
    if (a === b || seen.has(key)) continue;
    seen.add(key);
    pairs.push(a, b);
  }
  const nodes = new Float32Array(n * PPN);
  for (let i = 0; i < n; i++) {
    const j = i * PPN;
    nodes[j] = x[i]; nodes[j + 1] = y[i]; nodes[j + 6] = 1; nodes[j + 7] = 1; nodes[j + 8] = 1;
  }
  const m = pairs.length / 2;
  const links = new Float32Array(m * PPE);
  for (let k = 0; k < m; k++) {
    const a = pairs[2 * k] * PPN, b = pairs[2 * k + 1] * PPN;
    links[k * PPE] = a; links[k * PPE + 1] = b; links[k * PPE + 2] = 1;
    nodes[a + 6] += 1; nodes[b + 6] += 1;
  }
  return { nodes, links };
}

self.onmessage = ({ data }) => {
  if (data.stop) { running = false; return; }
  const { n, edges, x, y, iterations } = data;
  const { nodes, links } = matrices(n, edges, x, y);
  const settings = { ...DEFAULTS, ...forceAtlas2.inferSettings(n), barnesHutOptimize: n > 1000,
    adjustSizes: false };
  let done = 0;
  running = true;
  const step = () => {
    if (!running) return;
    const started = performance.now();
    do {
      iterate(settings, nodes, links);
      done += 1;
    } while (done < iterations && performance.now() - started < POST_MS);
    const px = new Float32Array(n);
    const py = new Float32Array(n);
    for (let i = 0; i < n; i++) { px[i] = nodes[i * PPN]; py[i] = nodes[i * PPN + 1]; }
    self.postMessage({ x: px, y: py, done, iterations }, [px.buffer, py.buffer]);
    if (done < iterations) setTimeout(step, 0); else running = false;
  };
  step();
};
