"""Parameters shared by the algorithms that fuse an optical image, a thermal layer and a DEM."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.errors import RtsFusionError
from ..core.features import resolve_features
from ..core.spectral import SENSORS
from ..core.stack import FusionInputs, GridOptions, OpticalBands
from ..core.thermal import ThermalSpec
from .common import RtsAlgorithm, layer_path, optional_number

# Enum indexes are part of saved models and scripts: new choices are appended, never inserted.
PRESET_KEYS = ("paper", "extended", "custom", "optical_dem", "optical", "rgb")
PRESET_LABELS = (
    "paper (study's 13 channels: optical, thermal, DEM, temperature series)",
    "extended (paper + terrain + NDWI + LST anomaly)",
    "custom",
    "optical_dem (optical + DEM: no thermal, no temperature series)",
    "optical (optical only: reflectance and indices)",
    "rgb (red, green, blue only)",
)
SENSOR_KEYS = (*SENSORS, "auto")
SENSOR_LABELS = (*SENSORS.values(), "Detect from the optical layer's band names and metadata")
BAND_KEYS = ("BLUE", "GREEN", "RED", "NIR", "SWIR1", "SWIR2")


class FusionInputsAlgorithm(RtsAlgorithm):
    """Base of algorithms taking optical, thermal and DEM layers (align-and-fuse, map-slumps)."""

    OPTICAL = "OPTICAL"
    THERMAL = "THERMAL"
    DEM = "DEM"
    SENSOR = "SENSOR"
    REFLECTANCE_SCALE = "REFLECTANCE_SCALE"
    REFLECTANCE_OFFSET = "REFLECTANCE_OFFSET"
    THERMAL_UNIT = "THERMAL_UNIT"
    THERMAL_SCALE = "THERMAL_SCALE"
    THERMAL_OFFSET = "THERMAL_OFFSET"
    THERMAL_K1 = "THERMAL_K1"
    THERMAL_K2 = "THERMAL_K2"
    FTI = "FTI"
    TEMPERATURE_SERIES = "TEMPERATURE_SERIES"
    SERIES_DATES = "SERIES_DATES"
    SERIES_UNIT = "SERIES_UNIT"
    VALID_MASK = "VALID_MASK"
    PRESET = "PRESET"
    CUSTOM_FEATURES = "CUSTOM_FEATURES"
    TERRAIN_RADIUS = "TERRAIN_RADIUS"
    TARGET_CRS = "TARGET_CRS"
    PIXEL_SIZE = "PIXEL_SIZE"
    EXTENT = "EXTENT"

    def add_input_parameters(self, with_features: bool = True) -> None:
        """Add the source layers, band mapping, feature choice (optional) and grid parameters."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.OPTICAL, "Optical image"))
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.THERMAL, "Thermal layer (LST or thermal band)", optional=True)
        )
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, "Elevation model (DEM, metres)", optional=True))
        # No default band: a band left empty is read from the optical layer's band names, wavelengths or its
        # sensor's band layout (the log prints the mapping used), and refused by name when that cannot tell.
        for key in BAND_KEYS:
            label = key if key.startswith(("NIR", "SWIR")) else key.capitalize()
            self.addParameter(
                QgsProcessingParameterBand(
                    f"BAND_{key}", f"{label} band (empty: from band names)", None, self.OPTICAL, optional=True
                )
            )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.SENSOR,
                "Optical sensor (band layout, Tasseled Cap)",
                options=list(SENSOR_LABELS),
                defaultValue=SENSOR_KEYS.index("auto"),
            )
        )
        if with_features:
            self.addParameter(
                QgsProcessingParameterEnum(
                    self.PRESET,
                    "Features",
                    options=list(PRESET_LABELS),
                    defaultValue=0,
                )
            )
            self.addParameter(
                QgsProcessingParameterString(
                    self.CUSTOM_FEATURES, "Custom feature list (comma-separated, with 'custom')", optional=True
                )
            )
        self.addParameter(QgsProcessingParameterRasterLayer(self.FTI, "Freeze-thaw index raster", optional=True))
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                self.TEMPERATURE_SERIES, "Temperature series (one band per date) to compute FTI", optional=True
            )
        )
        advanced = [
            QgsProcessingParameterNumber(
                self.REFLECTANCE_SCALE,
                "Reflectance scale (empty: from file)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.REFLECTANCE_OFFSET,
                "Reflectance offset (empty: from file)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterEnum(
                self.THERMAL_UNIT, "Thermal unit", options=["Kelvin", "Celsius"], defaultValue=0
            ),
            QgsProcessingParameterNumber(
                self.THERMAL_SCALE,
                "Thermal scale (empty: from file)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.THERMAL_OFFSET,
                "Thermal offset (empty: from file)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.THERMAL_K1,
                "Thermal constant K1 (radiance input)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.THERMAL_K2,
                "Thermal constant K2 (radiance input)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
            ),
            QgsProcessingParameterString(
                self.SERIES_DATES, "Temperature series dates (YYYY-MM-DD, comma-separated)", optional=True
            ),
            QgsProcessingParameterEnum(
                self.SERIES_UNIT, "Temperature series unit", options=["Celsius", "Kelvin"], defaultValue=0
            ),
            QgsProcessingParameterRasterLayer(self.VALID_MASK, "Valid-data mask (0 = exclude)", optional=True),
            QgsProcessingParameterNumber(
                self.TERRAIN_RADIUS,
                "Terrain radius for TPI/TRI (m)",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=100.0,
                minValue=0.001,
            ),
            QgsProcessingParameterCrs(self.TARGET_CRS, "Target CRS (empty: optical layer's)", optional=True),
            QgsProcessingParameterNumber(
                self.PIXEL_SIZE,
                "Target pixel size (empty: optical layer's)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
            ),
            QgsProcessingParameterExtent(self.EXTENT, "Target extent (empty: common area)", optional=True),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)

    def _optional_path(self, parameters, name: str, context, label: str) -> str | None:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        return layer_path(layer, label) if layer is not None else None

    def read_features(self, parameters, context) -> tuple[str, ...]:
        """The feature list chosen by the preset (or custom list) parameters."""
        preset = PRESET_KEYS[self.parameterAsEnum(parameters, self.PRESET, context)]
        custom = self.parameterAsString(parameters, self.CUSTOM_FEATURES, context)
        try:
            features = resolve_features(custom=custom) if preset == "custom" else resolve_features(preset)
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        return features

    def read_inputs(self, parameters, context) -> tuple[FusionInputs, GridOptions, float]:
        """The fusion inputs, grid options and terrain radius from the parameters."""
        optical = layer_path(self.parameterAsRasterLayer(parameters, self.OPTICAL, context), "optical")
        thermal = self._optional_path(parameters, self.THERMAL, context, "thermal")
        dem = self._optional_path(parameters, self.DEM, context, "DEM")
        band = {k: self.parameterAsInt(parameters, f"BAND_{k}", context) or None for k in BAND_KEYS}
        bands = OpticalBands(
            blue=band["BLUE"],
            green=band["GREEN"],
            red=band["RED"],
            nir=band["NIR"],
            swir1=band["SWIR1"],
            swir2=band["SWIR2"],
            sensor=SENSOR_KEYS[self.parameterAsEnum(parameters, self.SENSOR, context)],
            scale=optional_number(self, parameters, self.REFLECTANCE_SCALE, context),
            offset=optional_number(self, parameters, self.REFLECTANCE_OFFSET, context),
        )
        try:
            spec = ThermalSpec(
                unit=("K", "C")[self.parameterAsEnum(parameters, self.THERMAL_UNIT, context)],
                scale=optional_number(self, parameters, self.THERMAL_SCALE, context),
                offset=optional_number(self, parameters, self.THERMAL_OFFSET, context),
                k1=optional_number(self, parameters, self.THERMAL_K1, context),
                k2=optional_number(self, parameters, self.THERMAL_K2, context),
            )
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        dates = self.parameterAsString(parameters, self.SERIES_DATES, context)
        inputs = FusionInputs(
            optical=optical,
            thermal=thermal,
            dem=dem,
            bands=bands,
            thermal_spec=spec,
            fti=self._optional_path(parameters, self.FTI, context, "FTI"),
            temperature_series=self._optional_path(parameters, self.TEMPERATURE_SERIES, context, "temperature series"),
            series_dates=tuple(d.strip() for d in dates.split(",") if d.strip()) or None,
            series_unit=("C", "K")[self.parameterAsEnum(parameters, self.SERIES_UNIT, context)],
            valid_mask=self._optional_path(parameters, self.VALID_MASK, context, "valid mask"),
        )
        crs = self.parameterAsCrs(parameters, self.TARGET_CRS, context)
        target_wkt = crs.toWkt() if crs.isValid() else None
        extent = None
        if parameters.get(self.EXTENT):
            extent_crs = crs if crs.isValid() else self.parameterAsRasterLayer(parameters, self.OPTICAL, context).crs()
            r = self.parameterAsExtent(parameters, self.EXTENT, context, extent_crs)
            extent = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum())
        pixel = optional_number(self, parameters, self.PIXEL_SIZE, context)
        grid = GridOptions(crs=target_wkt, pixel_size=pixel or None, extent=extent)
        radius = self.parameterAsDouble(parameters, self.TERRAIN_RADIUS, context)
        return inputs, grid, radius
