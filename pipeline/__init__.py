"""QGIS-free orchestration: map one unit (align → fuse → detect → polygonise) and the worker process entry."""
