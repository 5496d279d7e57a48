"""Algorithm "Create sample scene": a synthetic thaw-slump scene with optical, thermal, DEM and outlines."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..core.synthetic import generate_multiyear_scene, generate_sample_scene
from .common import RtsAlgorithm


class SampleSceneAlgorithm(RtsAlgorithm):
    """Write a deterministic synthetic scene to try every algorithm without data of one's own."""

    SIZE = "SIZE"
    SEED = "SEED"
    FOLDER = "FOLDER"
    OPTICAL = "OPTICAL"
    THERMAL = "THERMAL"
    DEM = "DEM"
    TEMPERATURE_SERIES = "TEMPERATURE_SERIES"
    SLUMPS = "SLUMPS"
    N_SLUMPS = "N_SLUMPS"

    def name(self) -> str:
        return "samplescene"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Create sample scene"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Writes a synthetic, deterministic thaw-slump scene on a permafrost plateau (4,400–5,200 m): a "
            "Sentinel-2-like optical image (UTM 46N, 10 m, bands B2, B3, B4, B8, B11, B12, scale 0.0001), a "
            "Landsat-like surface-temperature layer (UTM 45N, 30 m, DN × 0.00341802 + 149 = K), a DEM "
            "(WGS 84, 1 arc-second), a monthly temperature series (100 m, °C) and the slump outlines "
            "(GeoPackage). Slumps are centred on 3–10° slopes 20–400 m from lakes and are bare, bright and warm, with "
            "confounders (bare patches, warm south slopes, terrain shading) so no single band finds them.<br>"
            "With 'multi-year series', the folder 'years' also gets yearly slump inventories (slumps_2019.gpkg … "
            "slumps_2024.gpkg: slumps that grow, some appearing later) and NDVI and LST rasters (ndvi_2019.tif …, "
            "lst_2019.tif …: NDVI falling and LST rising inside slumps) for the inventory-analysis algorithms.<br>"
            "With regions, the scene is split into west–east strips whose relief and surface mix differ, outlined "
            "in regions.gpkg (field 'region'), for 'Spatial transfer'. With a year, the same place is drawn as in "
            "that year (slumps smaller the earlier the year, that year's illumination and noise), for 'Temporal "
            "transfer': generate two years with the same seed.<br>"
            "The same size and seed always give the same files."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIZE,
                "Optical image size (pixels per side)",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=512,
                minValue=64,
                maxValue=4096,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SEED, "Random seed", QgsProcessingParameterNumber.Type.Integer, defaultValue=42
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "REGIONS", "Regions (0 = none; 2–6 west–east strips of different relief and surface)",
                QgsProcessingParameterNumber.Type.Integer, 0, False, 0, 6,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                "YEAR", "Year of the same place (empty = none; 2019–2024)", QgsProcessingParameterNumber.Type.Integer,
                None, True, 2019, 2024,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterBoolean("MULTIYEAR", "Also write a multi-year series (2019–2024)", defaultValue=False)
        )
        self.addParameter(QgsProcessingParameterFolderDestination(self.FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputFolder("YEARS_FOLDER", "Multi-year series folder"))
        self.addOutput(QgsProcessingOutputVectorLayer("REGIONS_LAYER", "Regions"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OPTICAL, "Optical image"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.THERMAL, "Thermal layer"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.DEM, "DEM"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.TEMPERATURE_SERIES, "Temperature series"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.SLUMPS, "Slump outlines"))
        self.addOutput(QgsProcessingOutputNumber(self.N_SLUMPS, "Number of slumps"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        folder = self.parameterAsString(parameters, self.FOLDER, context)
        size = self.parameterAsInt(parameters, self.SIZE, context)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        os.makedirs(folder, exist_ok=True)
        feedback.pushInfo(f"Generating a {size} × {size} px scene (seed {seed}) in {folder}")
        regions = self.parameterAsInt(parameters, "REGIONS", context)
        if regions == 1:
            raise QgsProcessingException("Regions must be 0 (none) or 2 to 6.")
        year_value = parameters.get("YEAR")
        year = self.parameterAsInt(parameters, "YEAR", context) if year_value not in (None, "") else None
        scene = generate_sample_scene(folder, size=size, seed=seed, regions=regions, year=year)
        feedback.setProgress(100)
        feedback.pushInfo(f"{scene.n_slumps} slumps, {100 * scene.slump_fraction:.2f} % of the area.")
        outputs = {
            self.OPTICAL: (scene.optical, "Sample optical"),
            self.THERMAL: (scene.thermal, "Sample thermal"),
            self.DEM: (scene.dem, "Sample DEM"),
            self.TEMPERATURE_SERIES: (scene.temperature_series, "Sample temperature series"),
            self.SLUMPS: (scene.slumps, "Sample slumps"),
        }
        for key, (path, label) in outputs.items():
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(label, context.project(), key))
        result = {key: path for key, (path, _) in outputs.items()}
        result[self.N_SLUMPS] = scene.n_slumps
        result[self.FOLDER] = folder
        if regions:
            result["REGIONS_LAYER"] = os.path.join(folder, "regions.gpkg")
        if self.parameterAsBool(parameters, "MULTIYEAR", context):
            series = generate_multiyear_scene(os.path.join(folder, "years"), size=size, seed=seed, base=scene)
            feedback.pushInfo(f"Multi-year series {series.years[0]}–{series.years[-1]} in {folder}/years")
            result["YEARS_FOLDER"] = os.path.join(folder, "years")
        return result
