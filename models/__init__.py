"""Deep-learning side of RTS Fusion (torch + transformers, QGIS-free): networks, model package, training."""
