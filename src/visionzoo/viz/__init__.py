"""Pictures people look at: top-k grids, neighbour strips, montages, curves (matplotlib, Agg)."""
