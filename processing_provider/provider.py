"""The Processing provider `rtsfusion` and its algorithm list."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .align_fuse import AlignFuseAlgorithm
from .band_importance import BandImportanceAlgorithm
from .change_detect import ChangeDetectAlgorithm
from .detect import DetectAlgorithm
from .evaluate import EvaluateAlgorithm
from .export_onnx import ExportOnnxAlgorithm
from .import_checkpoint import ImportCheckpointAlgorithm
from .inventory_stats import InventoryStatsAlgorithm
from .landsat_bands import LandsatBandsAlgorithm
from .map_region import MapRegionAlgorithm
from .map_slumps import MapSlumpsAlgorithm
from .model_study import ModelStudyAlgorithm
from .polygonize import PolygonizeAlgorithm
from .sample_scene import SampleSceneAlgorithm
from .spatial_transfer import SpatialTransferAlgorithm
from .temporal_transfer import TemporalTransferAlgorithm
from .temporal_trends import TemporalTrendsAlgorithm
from .train import TrainAlgorithm

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class RtsFusionProvider(QgsProcessingProvider):
    """Retrogressive-thaw-slump mapping algorithms."""

    def id(self) -> str:
        return "rtsfusion"

    def name(self) -> str:
        return "RTS Fusion"

    def longName(self) -> str:  # noqa: N802 - QGIS API name
        return "RTS Fusion: retrogressive thaw slump mapping"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API name
        for alg in (
            AlignFuseAlgorithm(),
            SampleSceneAlgorithm(),
            LandsatBandsAlgorithm(),
            TrainAlgorithm(),
            ImportCheckpointAlgorithm(),
            DetectAlgorithm(),
            PolygonizeAlgorithm(),
            EvaluateAlgorithm(),
            MapSlumpsAlgorithm(),
            MapRegionAlgorithm(),
            BandImportanceAlgorithm(),
            InventoryStatsAlgorithm(),
            TemporalTrendsAlgorithm(),
            ChangeDetectAlgorithm(),
            ModelStudyAlgorithm(),
            SpatialTransferAlgorithm(),
            TemporalTransferAlgorithm(),
            ExportOnnxAlgorithm(),
        ):
            self.addAlgorithm(alg)
