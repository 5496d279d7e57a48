"""``python -m rts_fusion``: the console commands for batch jobs (see pipeline/cli.py), without QGIS."""

from .pipeline.cli import main

raise SystemExit(main())
