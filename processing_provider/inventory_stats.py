"""Algorithm "RTS inventory statistics": where slumps occur, with frequency ratios per terrain class."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..core.bands import describe_mapping
from ..core.inventory import (
    DEFAULT_WATER_EDGES,
    STUDY_SLOPE_EDGES,
    InventoryOptions,
    inventory_statistics,
    write_report,
)
from ..core.sources import read_band_mapping
from .common import RtsAlgorithm, layer_path, run_core, write_table
from .params import vector_path


def parse_numbers(text: str, label: str) -> tuple[float, ...]:
    """Comma-separated numbers, or a clear error."""
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError as exc:
        raise QgsProcessingException(f"{label}: '{text}' is not a comma-separated list of numbers.") from exc
    if not values:
        raise QgsProcessingException(f"{label}: give at least one number.")
    return values


class InventoryStatsAlgorithm(RtsAlgorithm):
    """Distribution of an RTS inventory over elevation, slope, aspect, slope position and distance to water."""

    GROUP = "Inventory analysis"
    SLUMPS = "SLUMPS"
    DEM = "DEM"
    WATER = "WATER"
    OPTICAL = "OPTICAL"
    GREEN_BAND = "GREEN_BAND"
    NIR_BAND = "NIR_BAND"
    AOI = "AOI"
    ELEVATION_BIN = "ELEVATION_BIN"
    SLOPE_BIN = "SLOPE_BIN"
    SLOPE_EDGES = "SLOPE_EDGES"
    WATER_EDGES = "WATER_EDGES"
    TPI_RADIUS = "TPI_RADIUS"
    NDWI_THRESHOLD = "NDWI_THRESHOLD"
    OUTPUT = "OUTPUT"
    HTML = "HTML"
    N_SLUMPS = "N_SLUMPS"
    STUDY_AREA_KM2 = "STUDY_AREA_KM2"

    def name(self) -> str:
        return "inventorystats"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "RTS inventory statistics"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Describes where the slumps of an inventory occur. For elevation (class width), slope (class edges), "
            "aspect (8 sectors and flat), slope position (TPI classes: ridge, upper, middle, flat, lower, valley) "
            "and distance to water (class edges), it reports per class the number of slumps (each counted in the "
            "class holding most of its area), the slump area, the class's share of the slump area and of the "
            "study area, and the <b>frequency ratio</b> (slump share ÷ area share; above 1 the class holds more "
            "slumps than its size implies).<br><br>"
            "The study area is the DEM (or the area of interest); a geographic DEM is analysed in the UTM zone of "
            "its centre. Water comes from a water polygon layer or, without one, from the NDWI of an optical "
            "layer (green and NIR bands); with neither, distance to water is left out. The study reports slumps "
            "at 4,700–4,800 m on 3–7° slopes near water.<br>"
            "<b>Slope classes</b>: by default the study's edges 0, 3, 7, 15, 25° (the last class open), so its "
            "3–7° finding can be tested; change them freely, or clear them for equal-width classes of the "
            "<i>slope class width</i>. Elevation classes are equal-width (100 m by default, our choice: narrow "
            "enough to test the study's 4,700–4,800 m band)."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.SLUMPS, "RTS inventory (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, "Elevation model (DEM, metres)"))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.WATER, "Water bodies (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.OPTICAL, "Optical image (for NDWI water)", optional=True)
        )
        # No default band: read from the optical layer's band names, or asked for (never a silent 2 and 4).
        self.addParameter(
            QgsProcessingParameterBand(
                self.GREEN_BAND, "Green band (empty: from band names)", None, self.OPTICAL, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterBand(
                self.NIR_BAND, "NIR band (empty: from band names)", None, self.OPTICAL, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI, "Study area (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.ELEVATION_BIN,
                "Elevation class width (m)",
                QgsProcessingParameterNumber.Type.Double,
                100.0,
                False,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SLOPE_BIN, "Slope class width (°)", QgsProcessingParameterNumber.Type.Double, 2.0, False, 0.1, 45.0
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SLOPE_EDGES,
                "Slope class edges (°, comma-separated; the last class is open; empty: equal-width classes)",
                ", ".join(f"{v:g}" for v in STUDY_SLOPE_EDGES),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.WATER_EDGES,
                "Distance-to-water class edges (m, comma-separated; the last class is open)",
                ", ".join(f"{v:g}" for v in DEFAULT_WATER_EDGES),
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TPI_RADIUS,
                "Slope-position (TPI) radius (m)",
                QgsProcessingParameterNumber.Type.Double,
                300.0,
                False,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.NDWI_THRESHOLD,
                "NDWI water threshold",
                QgsProcessingParameterNumber.Type.Double,
                0.2,
                False,
                -1.0,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Statistics table", QgsProcessing.SourceType.TypeVector)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.HTML, "Report", "HTML files (*.html)", optional=True)
        )
        self.addOutput(QgsProcessingOutputNumber(self.N_SLUMPS, "Slumps in the study area"))
        self.addOutput(QgsProcessingOutputNumber(self.STUDY_AREA_KM2, "Study area (km²)"))

    def _water_bands(self, parameters, context, optical: str, feedback) -> tuple[int, int]:
        """Green and NIR bands of the optical layer: as set, else from its band names; refused when unknown."""
        given = {
            key: self.parameterAsInt(parameters, name, context)
            for key, name in (("green", self.GREEN_BAND), ("nir", self.NIR_BAND))
            if self.parameterAsInt(parameters, name, context)
        }
        mapping = read_band_mapping(optical, given)
        missing = mapping.missing(("green", "nir"))
        if missing:
            names = " and ".join(f"{k.upper() if k == 'nir' else k.capitalize()} band" for k in missing)
            raise QgsProcessingException(
                f"The optical layer's band names and metadata do not tell which band is {names.replace(' band', '')}: "
                f"set the {names} parameter(s) (NDWI water needs them), or give a water layer instead."
            )
        feedback.pushInfo(f"NDWI water from the optical layer: {describe_mapping(mapping, ('green', 'nir'))}.")
        return mapping.bands["green"], mapping.bands["nir"]

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        slumps = vector_path(self.parameterAsVectorLayer(parameters, self.SLUMPS, context), "inventory")
        dem = layer_path(self.parameterAsRasterLayer(parameters, self.DEM, context), self.DEM)
        water_layer = self.parameterAsVectorLayer(parameters, self.WATER, context)
        optical_layer = self.parameterAsRasterLayer(parameters, self.OPTICAL, context)
        aoi_layer = self.parameterAsVectorLayer(parameters, self.AOI, context)
        slope_edges = self.parameterAsString(parameters, self.SLOPE_EDGES, context)
        options = InventoryOptions(
            elevation_bin=self.parameterAsDouble(parameters, self.ELEVATION_BIN, context),
            slope_bin=self.parameterAsDouble(parameters, self.SLOPE_BIN, context),
            slope_edges=parse_numbers(edges, "Slope classes") if (edges := slope_edges.strip()) else (),
            water_edges=parse_numbers(self.parameterAsString(parameters, self.WATER_EDGES, context), "Water classes"),
            tpi_radius=self.parameterAsDouble(parameters, self.TPI_RADIUS, context),
            ndwi_threshold=self.parameterAsDouble(parameters, self.NDWI_THRESHOLD, context),
        )
        optical = layer_path(optical_layer, "optical") if optical_layer else None
        green, nir = 2, 4  # unused unless water comes from the optical layer's NDWI
        if optical and not water_layer:
            green, nir = self._water_bands(parameters, context, optical, feedback)
        result = run_core(
            feedback,
            inventory_statistics,
            slumps,
            dem,
            water_path=vector_path(water_layer, "water") if water_layer else None,
            optical_path=optical,
            green_band=green,
            nir_band=nir,
            aoi_path=vector_path(aoi_layer, "study area") if aoi_layer else None,
            options=options,
        )
        for line in result.summary:
            feedback.pushInfo(line)
        dest = write_table(self, parameters, self.OUTPUT, context, result.rows)
        results = {self.OUTPUT: dest, self.N_SLUMPS: result.n_slumps, self.STUDY_AREA_KM2: result.study_area_km2}
        html = self.parameterAsFileOutput(parameters, self.HTML, context)
        if html:
            results[self.HTML] = write_report(html, result)
        return results
