"""Algorithm "Align and fuse layers": optical + thermal + DEM → fused feature stack."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination

from ..core.features import EXTENDED, OPTICAL_DEM, OPTICAL_ONLY, PAPER
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
            f"<b>Presets</b>: <i>paper</i> = the study's 13 channels ({', '.join(PAPER)}; needs optical, thermal, "
            f"DEM and a temperature series or FTI raster); <i>extended</i> adds {', '.join(EXTENDED[len(PAPER) :])}; "
            f"for the inputs people have: <i>optical_dem</i> = {', '.join(OPTICAL_DEM)} (optical + DEM); "
            f"<i>optical</i> = {', '.join(OPTICAL_ONLY)} (optical only); <i>rgb</i> = RED, GREEN, BLUE; "
            "<i>custom</i> takes a comma-separated list. Missing inputs are all listed at once, with the preset "
            "that fits what was given.<br>"
            "<b>Bands</b>: a band left empty is read from the optical layer's band names (Blue, B2, B02, SR_B2 …), "
            "wavelength metadata, or the sensor's usual band order when the file has exactly that many unnamed "
            "bands; when none tells, the run stops and asks for the band. The log prints the mapping used.<br>"
            "<b>Reflectance</b>: optical values × scale + offset must give reflectance 0–1 (Sentinel-2 L2A: "
            "0.0001; Landsat C2 L2: 0.0000275 and −0.2). Left empty, the file's own scale/offset is used, with "
            "a Sentinel-2 L2A BOA_ADD_OFFSET (−1000 DN from processing baseline 04.00) when the metadata has one; "
            "a warning is logged and stored in the stack when every band sits at or above 0.1 reflectance.<br>"
            "<b>Thermal</b>: LST in K or °C, or any encoding via scale/offset (Landsat C2 ST_B10: 0.00341802, "
            "149, K); with K1/K2 the scaled value is radiance, turned into brightness temperature.<br>"
            "<b>FTI</b> (freeze–thaw index, √TDD/(√TDD+√FDD)) comes from an FTI raster, or from a temperature "
            "series raster (one band per date; dates from band descriptions or the dates parameter). Thermal "
            "layers and temperature series with implausible temperatures (a wrong unit) are refused.<br>"
            "<b>Checks</b>: a pixel size more than 10× finer than the finest input, an output larger than the "
            "free disk space, or metres given for a geographic CRS are refused before anything is written; "
            "index values outside their physical range are counted in the log; terrain at the edge of a DEM that "
            "covers no more than the grid is computed from the edge replicated (the log gives the pixel count).<br>"
            "Pixels where any input is nodata are nodata (−9999) in every band; a stack with no valid pixel "
            "names the input that is empty over the common area."
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
            feedback,
            build_fused_stack,
            inputs,
            features,
            output,
            grid_options=grid,
            terrain_radius_m=radius,
            log=feedback.pushInfo,
        )
        feedback.pushInfo(
            f"Fused stack: {info.grid.width} × {info.grid.height} px, {len(info.band_names)} bands, "
            f"{100 * (info.valid_fraction or 0):.1f} % valid pixels."
        )
        return {self.OUTPUT: output}
