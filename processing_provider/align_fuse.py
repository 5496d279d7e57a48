"""Algorithm "Align and fuse layers": optical + thermal + DEM → fused feature stack."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination

from ..core.features import EXTENDED, PAPER
from ..core.stack import build_fused_stack
from .common import run_core
from .fusion_inputs import FusionInputsAlgorithm


class AlignFuseAlgorithm(FusionInputsAlgorithm):
    """Align optical, thermal and DEM layers onto one grid and write the fused feature stack."""

    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "alignfuse"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Align and fuse layers"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Aligns an optical image, a thermal layer and a DEM of any CRS and resolution onto one grid and "
            "writes the fused feature stack: one tiled GeoTIFF whose bands are named features.<br><br>"
            "<b>Grid</b>: by default the optical layer's CRS and pixel size over the area all inputs cover. "
            "Reflectance and temperature are resampled bilinearly, elevation cubically, masks by nearest "
            "neighbour. Terrain features use DEM beyond the grid edge (a halo of the terrain radius).<br>"
            f"<b>Presets</b>: <i>paper</i> = the study's 13 channels ({', '.join(PAPER)}); <i>extended</i> adds "
            f"{', '.join(EXTENDED[len(PAPER) :])}; <i>custom</i> takes a comma-separated list.<br>"
            "<b>Reflectance</b>: optical values × scale + offset must give reflectance 0–1 (Sentinel-2 L2A: "
            "0.0001; Landsat C2 L2: 0.0000275 and −0.2). Left empty, the file's own scale/offset is used.<br>"
            "<b>Thermal</b>: LST in K or °C, or any encoding via scale/offset (Landsat C2 ST_B10: 0.00341802, "
            "149, K); with K1/K2 the scaled value is radiance, turned into brightness temperature.<br>"
            "<b>FTI</b> (freeze–thaw index, √TDD/(√TDD+√FDD)) comes from an FTI raster, or from a temperature "
            "series raster (one band per date; dates from band descriptions or the dates parameter).<br>"
            "Pixels where any input is nodata are nodata (−9999) in every band."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.add_input_parameters(with_features=True)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Fused stack"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        features = self.read_features(parameters, context)
        inputs, grid, radius = self.read_inputs(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        feedback.pushInfo(f"Features ({len(features)}): {', '.join(features)}")
        info = run_core(
            feedback, build_fused_stack, inputs, features, output, grid_options=grid, terrain_radius_m=radius
        )
        feedback.pushInfo(
            f"Fused stack: {info.grid.width} × {info.grid.height} px, {len(info.band_names)} bands, "
            f"{100 * (info.valid_fraction or 0):.1f} % valid pixels."
        )
        return {self.OUTPUT: output}
