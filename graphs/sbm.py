"""Child process of `metrics.fit_blocks`: fit a stochastic block model, save the blocks.

Run as `python -m graphs.sbm GRAPH.gt BLOCKS.npy SEED`; the parent kills it
when its time is up, which a fit inside the worker process could not allow.
"""

from __future__ import annotations

import sys

import graph_tool as gt
import graph_tool.inference as gti
import numpy as np


def main(argv: list[str]) -> int:
    graph_path, out_path, seed = argv[0], argv[1], int(argv[2])
    gt.seed_rng(seed)
    np.random.seed(seed)
    g = gt.load_graph(graph_path)
    state = gti.minimize_blockmodel_dl(g)
    np.save(out_path, np.asarray(state.get_blocks().a, dtype=np.int64))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
