"""The feature catalogue: every band a fused stack can hold, its group and units, and the named presets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import FeatureError

OPTICAL = "optical"
AUXILIARY = "auxiliary"


@dataclass(frozen=True)
class FeatureDef:
    """One feature of the stack.

    Attributes:
        name: band name written to the stack (upper case).
        group: "optical" (reflectance and spectral indices) or "auxiliary" (thermal and terrain): the two
            streams of feature-level fusion.
        units: physical units, "1" for dimensionless.
        needs: inputs it is derived from: optical band keys, "lst", "dem", "fti_source".
        description: one line for help texts and metadata.

    """

    name: str
    group: str
    units: str
    needs: tuple[str, ...]
    description: str


_DEFS = [
    FeatureDef("RED", OPTICAL, "1", ("red",), "red reflectance"),
    FeatureDef("GREEN", OPTICAL, "1", ("green",), "green reflectance"),
    FeatureDef("BLUE", OPTICAL, "1", ("blue",), "blue reflectance"),
    FeatureDef("NIR", OPTICAL, "1", ("nir",), "near-infrared reflectance"),
    FeatureDef("SWIR1", OPTICAL, "1", ("swir1",), "shortwave-infrared 1 (~1.6 µm) reflectance"),
    FeatureDef("SWIR2", OPTICAL, "1", ("swir2",), "shortwave-infrared 2 (~2.2 µm) reflectance"),
    FeatureDef("DEM", AUXILIARY, "m", ("dem",), "elevation"),
    FeatureDef("EVI", OPTICAL, "1", ("nir", "red", "blue"), "enhanced vegetation index"),
    FeatureDef("FTI", AUXILIARY, "1", ("fti_source",), "freeze-thaw index sqrt(TDD)/(sqrt(TDD)+sqrt(FDD))"),
    FeatureDef("LST", AUXILIARY, "K", ("lst",), "land-surface temperature"),
    FeatureDef("NBR", OPTICAL, "1", ("nir", "swir2"), "normalised burn ratio"),
    FeatureDef("NDMI", OPTICAL, "1", ("nir", "swir1"), "normalised difference moisture index"),
    FeatureDef("NDVI", OPTICAL, "1", ("nir", "red"), "normalised difference vegetation index"),
    FeatureDef("NDWI", OPTICAL, "1", ("green", "nir"), "normalised difference water index (McFeeters)"),
    FeatureDef("TCB", OPTICAL, "1", ("blue", "green", "red", "nir", "swir1", "swir2"), "Tasseled-Cap brightness"),
    FeatureDef("TCG", OPTICAL, "1", ("blue", "green", "red", "nir", "swir1", "swir2"), "Tasseled-Cap greenness"),
    FeatureDef("TCW", OPTICAL, "1", ("blue", "green", "red", "nir", "swir1", "swir2"), "Tasseled-Cap wetness"),
    FeatureDef("LST_ANOMALY", AUXILIARY, "sigma", ("lst",), "scene-standardised LST anomaly"),
    FeatureDef("SLOPE", AUXILIARY, "degree", ("dem",), "slope angle (Horn)"),
    FeatureDef("ASPECT_SIN", AUXILIARY, "1", ("dem",), "sine of aspect (east-facing = 1)"),
    FeatureDef("ASPECT_COS", AUXILIARY, "1", ("dem",), "cosine of aspect (north-facing = 1)"),
    FeatureDef("PLAN_CURV", AUXILIARY, "1/m", ("dem",), "plan curvature (Zevenbergen-Thorne)"),
    FeatureDef("PROFILE_CURV", AUXILIARY, "1/m", ("dem",), "profile curvature (Zevenbergen-Thorne)"),
    FeatureDef("TPI", AUXILIARY, "m", ("dem",), "topographic position index at the terrain radius"),
    FeatureDef("TRI", AUXILIARY, "m", ("dem",), "terrain ruggedness index (RMS difference) at the terrain radius"),
]

FEATURES: dict[str, FeatureDef] = {f.name: f for f in _DEFS}

# The study's 13 input channels: RGB and its ten factor rasters (alphabetical, as in its release).
PAPER = ("RED", "GREEN", "BLUE", "DEM", "EVI", "FTI", "LST", "NBR", "NDMI", "NDVI", "TCB", "TCG", "TCW")
EXTENDED = PAPER + (
    "SLOPE",
    "ASPECT_SIN",
    "ASPECT_COS",
    "PLAN_CURV",
    "PROFILE_CURV",
    "TPI",
    "TRI",
    "NDWI",
    "LST_ANOMALY",
)
PRESETS: dict[str, tuple[str, ...]] = {"paper": PAPER, "extended": EXTENDED, "rgb": ("RED", "GREEN", "BLUE")}

TERRAIN = ("SLOPE", "ASPECT_SIN", "ASPECT_COS", "PLAN_CURV", "PROFILE_CURV", "TPI", "TRI")


def resolve_features(preset: str | None = None, custom: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """The ordered feature list for a preset name or a custom list (names or a comma-separated string).

    Raises:
        FeatureError: unknown preset, unknown feature name, duplicates or an empty list.

    """
    if custom:
        names = [n.strip().upper() for n in (custom.split(",") if isinstance(custom, str) else custom)]
        names = [n for n in names if n]
    elif preset:
        if preset not in PRESETS:
            raise FeatureError(f"Unknown feature preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        names = list(PRESETS[preset])
    else:
        raise FeatureError("Give a feature preset or a list of features.")
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise FeatureError(f"Unknown feature(s) {', '.join(unknown)}; known features: {', '.join(FEATURES)}.")
    if len(set(names)) != len(names):
        raise FeatureError(f"Feature list has duplicates: {', '.join(names)}.")
    if not names:
        raise FeatureError("The feature list is empty.")
    return tuple(names)


def required_inputs(features: Sequence[str]) -> set[str]:
    """All inputs (optical band keys, lst, dem, fti_source) the features need."""
    return {need for f in features for need in FEATURES[f].needs}
