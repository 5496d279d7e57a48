"""Algorithm "Map thaw slumps over a region": mapslumps unit by unit on Dask, merged into mosaics and one layer."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..core.errors import RtsFusionError
from ..pipeline.map_slumps import MapInputs
from ..pipeline.region import RegionOptions, geoparquet_supported, input_raster, map_region
from .common import layer_path, map_options, require_model_runtime, run_core, style_on_load
from .fusion_inputs import FusionInputsAlgorithm
from .params import (
    MODEL_HELP,
    add_device_parameter,
    add_min_area_parameter,
    add_model_file_parameter,
    add_threshold_parameter,
    vector_path,
)


class MapRegionAlgorithm(FusionInputsAlgorithm):
    """Region-scale mapping: the area cut into units on one grid, each unit a Dask task, results merged."""

    GROUP = "Deep learning"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    MORE_OPTICAL = "MORE_OPTICAL"
    MORE_THERMAL = "MORE_THERMAL"
    MORE_DEM = "MORE_DEM"
    AOI = "AOI"
    UNIT_SIZE = "UNIT_SIZE"
    WORKERS = "WORKERS"
    SCHEDULER = "SCHEDULER"
    RETRIES = "RETRIES"
    COG = "COG"
    GEOPARQUET = "GEOPARQUET"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    PROBABILITY = "PROBABILITY"
    MASK = "MASK"
    POLYGONS = "POLYGONS"
    STATUS = "STATUS"
    COUNT = "COUNT"
    FAILED = "FAILED"

    def name(self) -> str:
        return "mapregion"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Map thaw slumps over a region (Dask)"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        parquet = "" if geoparquet_supported() else " This GDAL has no Parquet driver, so GeoParquet is refused here."
        return (
            "Maps thaw slumps over an area too large for one run, as 'Map thaw slumps' does for one scene. The "
            "region's grid (the optical layer's, or the target CRS and pixel size given) is cut into square "
            "units ('Unit size', UNIT_SIZE, in pixels; default 4096). Each unit is one Dask task: it aligns and"
            " fuses the layers over the unit and a halo holding every tile that touches it, detects, and writes"
            " its probability and mask. Tiles lie on one lattice over the whole region, so the probabilities "
            "equal a single run's over the same area (up to float rounding). Slumps are then polygonised across"
            " units: a slump cut by a unit border is one polygon, never split or duplicated, with the "
            "attributes 'Map thaw slumps' gives.<br><br>"
            + MODEL_HELP
            + (
                "Inputs: the optical, thermal and DEM layers as in 'Map thaw slumps'; 'Further optical scenes', "
                "'Further thermal scenes' and 'Further DEM tiles' (MORE_OPTICAL, MORE_THERMAL, MORE_DEM) are "
                "mosaicked with them into a VRT. 'Area of interest' (AOI, optional polygon layer): the grid is cut "
                "to its bounding box and only units meeting its polygons are mapped.<br><br>Engine: 'Local workers'"
                " (WORKERS) worker processes (0, the default: one per GPU, else one per CPU core), each with 1 "
                "thread and the model loaded once, started with QGIS's own Python (named in the log); or 'Dask "
                "scheduler' (SCHEDULER), the address of a running Dask scheduler (tcp://host:8786; empty, the "
                "default: a local cluster) whose workers can import this plugin and read the layers' paths. The log"
                " prints the Dask dashboard's address. 'Retries' (RETRIES, advanced; default 2): reruns of a unit "
                "whose worker died or which failed; a unit that still fails is reported with its error and the rest"
                " of the region completes.<br><br>Outputs in 'Output folder' (OUTPUT_FOLDER; give a folder of your "
                "own, so that a rerun can resume): probability.vrt and mask.vrt over the unit files in units/, "
                "slumps.gpkg, units.csv (each unit's state, tiles, time, error); with 'Also write COGs' (COG, "
                "default off) also Cloud-Optimised GeoTIFFs with overviews; with 'Also write GeoParquet' "
                "(GEOPARQUET, default off) also slumps.parquet."
            )
            + parquet
            + (
                " Each unit's files are written completely or not at all, then a status record: running again into "
                "the same folder with the same settings skips finished units (cancel, then rerun, resumes). "
                "Progress counts finished units; cancel stops the cluster's work."
            )
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        add_model_file_parameter(self, self.MODEL)
        self.add_input_parameters(with_features=False)
        for name, label in (
            (self.MORE_OPTICAL, "Further optical scenes (mosaicked)"),
            (self.MORE_THERMAL, "Further thermal scenes (mosaicked)"),
            (self.MORE_DEM, "Further DEM tiles (mosaicked)"),
        ):
            self.addParameter(
                QgsProcessingParameterMultipleLayers(name, label, QgsProcessing.SourceType.TypeRaster, optional=True)
            )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI, "Area of interest", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        add_device_parameter(self, self.DEVICE)
        add_threshold_parameter(self, self.THRESHOLD)
        add_min_area_parameter(self, self.MIN_AREA)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.UNIT_SIZE, "Unit size (pixels)", QgsProcessingParameterNumber.Type.Integer, 4096, False, 64
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.WORKERS,
                "Local workers (0: one per GPU or CPU core)",
                QgsProcessingParameterNumber.Type.Integer,
                0,
                False,
                0,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SCHEDULER, "Dask scheduler (empty: local cluster)", defaultValue="", optional=True
            )
        )
        retries = QgsProcessingParameterNumber(
            self.RETRIES, "Retries of a failed unit", QgsProcessingParameterNumber.Type.Integer, 2, False, 0, 10
        )
        retries.setFlags(retries.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(retries)
        self.addParameter(
            QgsProcessingParameterBoolean(self.COG, "Also write COGs (Cloud-Optimised GeoTIFFs with overviews)", False)
        )
        self.addParameter(QgsProcessingParameterBoolean(self.GEOPARQUET, "Also write GeoParquet polygons", False))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.PROBABILITY, "Slump probability (VRT mosaic)"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.MASK, "Slump mask (VRT mosaic)"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.POLYGONS, "Slump polygons"))
        self.addOutput(QgsProcessingOutputFile(self.STATUS, "Unit status table"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of slumps"))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, "Units that failed"))

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API name
        if self.parameterAsBool(parameters, self.GEOPARQUET, context) and not geoparquet_supported():
            return False, "GeoParquet needs GDAL's Parquet driver, which this QGIS lacks: untick GeoParquet."
        return super().checkParameterValues(parameters, context)

    def _mosaic(self, parameters, context, first: str | None, more: str, label: str, folder: str) -> str | None:
        """The layer, or a VRT of it and the further scenes of the multiple-layer parameter."""
        layers = self.parameterAsLayerList(parameters, more, context)
        paths = ([first] if first else []) + [layer_path(layer, label) for layer in layers]
        if not paths:
            return None
        try:
            return input_raster(paths, os.path.join(folder, "inputs", f"{label}.vrt"), label)
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        model = self.parameterAsFile(parameters, self.MODEL, context)
        require_model_runtime(model)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        fusion, grid, radius = self.read_inputs(parameters, context)
        optical = self._mosaic(parameters, context, fusion.optical, self.MORE_OPTICAL, "optical", folder)
        thermal = self._mosaic(parameters, context, fusion.thermal, self.MORE_THERMAL, "thermal", folder)
        dem = self._mosaic(parameters, context, fusion.dem, self.MORE_DEM, "dem", folder)
        fusion = type(fusion)(**{**fusion.__dict__, "optical": optical, "thermal": thermal, "dem": dem})
        aoi_layer = self.parameterAsVectorLayer(parameters, self.AOI, context)
        from ..pipeline.environment import qgis_python

        try:
            python = qgis_python()  # the installer's choice: never the QGIS binary, nor another Python on PATH
        except RuntimeError as exc:
            raise QgsProcessingException(str(exc)) from exc
        options = map_options(self, parameters, context)
        try:
            region = RegionOptions(
                unit_size=self.parameterAsInt(parameters, self.UNIT_SIZE, context),
                workers=self.parameterAsInt(parameters, self.WORKERS, context),
                scheduler=self.parameterAsString(parameters, self.SCHEDULER, context).strip(),
                retries=self.parameterAsInt(parameters, self.RETRIES, context),
                aoi=vector_path(aoi_layer, "area of interest") if aoi_layer else None,
                cog=self.parameterAsBool(parameters, self.COG, context),
                geoparquet=self.parameterAsBool(parameters, self.GEOPARQUET, context),
                python=python,
            )
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        result = run_core(
            feedback, map_region, MapInputs(fusion, grid, radius), model, folder, options, region, log=feedback.pushInfo
        )
        for unit, error in result.failed:
            feedback.reportError(f"Unit {unit} failed: {error}", fatalError=False)
        if context.project() is not None:  # the mosaics and polygons open in the project, styled
            for path, label, style in (
                (result.probability, "Slump probability", "probability"),
                (result.mask, "Slump mask", "mask"),
                (result.polygons, "Slump polygons", "slumps"),
            ):
                context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(label, context.project()))
                style_on_load(context, path, style)
        return {
            self.OUTPUT_FOLDER: result.folder,
            self.PROBABILITY: result.probability,
            self.MASK: result.mask,
            self.POLYGONS: result.polygons,
            self.STATUS: result.status,
            self.COUNT: result.count,
            self.FAILED: len(result.failed),
        }
