// The ForceAtlas2 layout, in a web worker so that the page stays responsive: it takes
// the node count, the edges (flat index pairs) and the starting positions, and posts
// the positions back every few iterations until it has run `iterations` of them or is
// told to stop. Served from this origin (CSP worker-src 'self'), not from a blob.
import Graph from "graphology";
import forceAtlas2 from "graphology-layout-forceatlas2";

let running = false;

self.onmessage = ({ data }) => {
  if (data.stop) { running = false; return; }
  const { n, edges, x, y, iterations } = data;
  const graph = new Graph({ type: "directed", allowSelfLoops: false });
  for (let i = 0; i < n; i++) graph.addNode(i, { x: x[i], y: y[i] });
  for (let e = 0; e < edges.length; e += 2) {
    if (edges[e] !== edges[e + 1]) graph.mergeEdge(edges[e], edges[e + 1]);
  }
  const settings = { ...forceAtlas2.inferSettings(graph), barnesHutOptimize: n > 1000, adjustSizes: false };
  const chunk = n > 5000 ? 2 : 5;
  let done = 0;
  running = true;
  const step = () => {
    if (!running) return;
    forceAtlas2.assign(graph, { iterations: chunk, settings });
    done += chunk;
    const px = new Float32Array(n);
    const py = new Float32Array(n);
    graph.forEachNode((node, attrs) => { px[node] = attrs.x; py[node] = attrs.y; });
    self.postMessage({ x: px, y: py, done, iterations }, [px.buffer, py.buffer]);
    if (done < iterations) setTimeout(step, 0); else running = false;
  };
  step();
};
