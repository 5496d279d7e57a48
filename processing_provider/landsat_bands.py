"""Algorithm "Landsat band files to optical raster": B1…B7.TIF (+ MTL) → one optical VRT or GeoTIFF."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
)

from ..core.errors import RtsFusionError
from ..core.landsat import build_landsat_optical
from ..core.spectral import SENSORS
from .common import RtsAlgorithm


class LandsatBandsAlgorithm(RtsAlgorithm):
    """Stack a Landsat scene's separate band files into one optical raster with band names and calibration."""

    BANDS = "BANDS"
    MTL = "MTL"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "landsatbands"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Landsat band files to optical raster"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Turns a Landsat scene delivered as one file per band (…_B1.TIF … _B7.TIF, or Level-2 …_SR_B1.TIF …) "
            "into one optical raster for 'Align and fuse' and 'Map thaw slumps'. Bands are put in band-number "
            'order and named ("Blue (B2)", "NIR (B5)" …), so the band pickers fill themselves. Thermal, '
            "panchromatic and cirrus files are left out and listed in the log (give a thermal band as the "
            "thermal layer instead).<br>"
            "<b>Calibration</b>: where the scene's metadata file (*_MTL.txt, found beside the bands when not "
            "given) has REFLECTANCE_MULT_BAND_x / REFLECTANCE_ADD_BAND_x, every band is converted to reflectance "
            "(0–1): Level-2 surface reflectance as given, Level-1 top-of-atmosphere reflectance corrected for the "
            "sun elevation. Fill pixels (the file's nodata, else 0) become nodata. Without those coefficients "
            "(e.g. old Landsat 5 MTLs with radiance only) the bands stay digital numbers and the log says so: set "
            "the reflectance scale and offset in 'Align and fuse' yourself.<br>"
            "<b>Output</b>: a .vrt file is a small text file that points at the band files (keep them where they "
            "are); any other format (e.g. .tif, or a temporary output) writes a full copy."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.BANDS, "Landsat band files (B1…B7.TIF)", QgsProcessing.SourceType.TypeFile
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MTL, "Metadata file (*_MTL.txt; empty: looked for beside the bands)", extension="txt",
                optional=True,
            )
        )  # fmt: skip
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Optical raster"))
        self.addOutput(QgsProcessingOutputString("SENSOR", "Sensor (for the 'Optical sensor' choice)"))
        self.addOutput(QgsProcessingOutputString("CALIBRATION", "What the band values are"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        files = self.parameterAsFileList(parameters, self.BANDS, context)
        mtl = self.parameterAsFile(parameters, self.MTL, context) or None
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        try:
            result = build_landsat_optical(files, output, mtl_path=mtl)
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for note in result.skipped:
            feedback.pushWarning(f"Left out {note}.")
        feedback.pushInfo(
            f"{SENSORS[result.sensor]}: {', '.join(b.description for b in result.bands)}; "
            f"metadata {result.mtl or 'not found'}."
        )
        if result.calibrated:
            feedback.pushInfo(f"Values are {result.calibration} (0–1), per band from the MTL.")
        else:
            feedback.pushWarning(
                "No reflectance coefficients (REFLECTANCE_MULT/ADD_BAND_x) were found, so the bands stay digital "
                "numbers, not reflectance. Set the optical reflectance scale and offset when aligning."
            )
        feedback.setProgress(100)
        return {self.OUTPUT: result.path, "SENSOR": result.sensor, "CALIBRATION": result.calibration}
