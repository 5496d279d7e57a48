"""QGIS-free geodata core of RTS Fusion: grids, alignment, features, the fused stack, synthetic scenes."""
