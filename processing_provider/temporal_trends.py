"""Algorithm "RTS temporal trends": yearly means in slumps and around them, with trends and significance."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..core.errors import RtsFusionError
from ..core.trends import parse_year_rasters, temporal_trends, write_report
from .common import RtsAlgorithm, layer_path, run_core, write_table
from .params import vector_path


class TemporalTrendsAlgorithm(RtsAlgorithm):
    """Per-slump and overall yearly means of rasters such as NDVI and LST, their trends and Mann-Kendall tests."""

    GROUP = "Inventory analysis"
    SLUMPS = "SLUMPS"
    RASTERS = "RASTERS"
    YEARS = "YEARS"
    VARIABLES = "VARIABLES"
    RING_WIDTH = "RING_WIDTH"
    ALPHA = "ALPHA"
    PER_SLUMP = "PER_SLUMP"
    OUTPUT = "OUTPUT"
    HTML = "HTML"
    N_SLUMPS = "N_SLUMPS"

    def name(self) -> str:
        return "temporaltrends"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "RTS temporal trends"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "How conditions inside slumps change over the years, against undisturbed ground around them.<br><br>"
            "Give the slump polygons and one raster per variable and year (e.g. ndvi_2019.tif … lst_2024.tif). "
            "The year is read from each file name (or give the years, comma-separated, in layer order); the "
            "variable is the file name without the year (or give names). Each variable needs at least 3 years.<br>"
            "For each variable and year: the mean inside the slumps and in a ring of the given width around them "
            "(ground that is no slump; a ring pixel belongs to its nearest slump), and their difference; overall "
            "and per slump. Trends per year: least squares and Theil–Sen (Sen's slope), with the Mann-Kendall "
            "test (two-sided p; 'increasing'/'decreasing' below the significance level). The study reports NDVI "
            "falling and LST rising inside slumps from 2019 to 2024."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterVectorLayer(self.SLUMPS, "RTS polygons", [QgsProcessing.SourceType.TypeVectorPolygon])
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(self.RASTERS, "Yearly rasters", QgsProcessing.SourceType.TypeRaster)
        )
        self.addParameter(
            QgsProcessingParameterString(self.YEARS, "Years, in layer order (empty: from file names)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.VARIABLES, "Variable names, in layer order (empty: from file names)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.RING_WIDTH,
                "Ring width around slumps (m)",
                QgsProcessingParameterNumber.Type.Double,
                60.0,
                False,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.ALPHA, "Significance level", QgsProcessingParameterNumber.Type.Double, 0.05, False, 0.001, 0.5
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.PER_SLUMP, "Also per slump", defaultValue=True))
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Trends table", QgsProcessing.SourceType.TypeVector)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.HTML, "Report", "HTML files (*.html)", optional=True)
        )
        self.addOutput(QgsProcessingOutputNumber(self.N_SLUMPS, "Slumps"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        slumps = vector_path(self.parameterAsVectorLayer(parameters, self.SLUMPS, context), "slumps")
        layers = self.parameterAsLayerList(parameters, self.RASTERS, context)
        paths = [layer_path(layer, "yearly raster") for layer in layers]
        years_text = self.parameterAsString(parameters, self.YEARS, context).strip()
        names_text = self.parameterAsString(parameters, self.VARIABLES, context).strip()
        try:
            years = [int(v) for v in years_text.replace(";", ",").split(",") if v.strip()] if years_text else None
        except ValueError as exc:
            raise QgsProcessingException(f"Years: '{years_text}' is not a comma-separated list of years.") from exc
        names = [v for v in names_text.replace(";", ",").split(",") if v.strip()] if names_text else None
        try:
            rasters = parse_year_rasters(paths, years, names)
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        result = run_core(
            feedback,
            temporal_trends,
            slumps,
            rasters,
            ring_width=self.parameterAsDouble(parameters, self.RING_WIDTH, context),
            alpha=self.parameterAsDouble(parameters, self.ALPHA, context),
            per_slump=self.parameterAsBool(parameters, self.PER_SLUMP, context),
        )
        for row in result.rows:
            if row["scope"] == "all" and row["zone"] != "ring":
                feedback.pushInfo(
                    f"{row['variable']} ({row['zone']}): Sen's slope {row['sen_slope']} per year, "
                    f"Mann-Kendall p {row['mk_p']} → {row['trend']}"
                )
        columns = list(dict.fromkeys(k for r in result.rows for k in r))
        dest = write_table(self, parameters, self.OUTPUT, context, result.rows, columns)
        results = {self.OUTPUT: dest, self.N_SLUMPS: result.n_slumps}
        html = self.parameterAsFileOutput(parameters, self.HTML, context)
        if html:
            results[self.HTML] = write_report(html, result)
        return results
