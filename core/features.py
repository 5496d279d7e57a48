"""The feature catalogue: every band a fused stack can hold, what it needs, how it is computed, and the presets.

Each feature carries the inputs it is derived from (optical band keys, a thermal layer, a DEM, a temperature
series or FTI raster) and its computation on one window of aligned inputs. The requirement check, the
stack builder, the panel and the model card all read this one catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import spectral, terrain, thermal
from .bands import OPTICAL_KEYS
from .errors import FeatureError

OPTICAL = "optical"
AUXILIARY = "auxiliary"


@dataclass
class WindowInputs:
    """The aligned inputs of one processing window, from which every feature is computed.

    Attributes:
        refl: reflectance (0–1) arrays keyed by optical key (blue … swir2), only those needed.
        lst: land-surface temperature in K, or None.
        dem: elevation in metres grown by `halo` pixels on each side, or None.
        halo: DEM pixels around the window.
        fti: freeze–thaw index, or None.
        dx: east–west pixel size in metres (a (rows, 1) column on geographic grids, halo rows included).
        dy: north–south pixel size in metres.
        dx_scalar: east–west pixel size in metres at the window's centre (for neighbourhood radii).
        sensor: optical sensor key (for Tasseled Cap).
        lst_stats: scene mean and standard deviation of LST (for the anomaly).
        radius_m: neighbourhood radius of TPI and TRI in metres.

    """

    refl: dict[str, np.ndarray]
    lst: np.ndarray | None = None
    dem: np.ndarray | None = None
    halo: int = 0
    fti: np.ndarray | None = None
    dx: np.ndarray | float = 1.0
    dy: float = 1.0
    dx_scalar: float = 1.0
    sensor: str = "other"
    lst_stats: tuple[float, float] = (0.0, 1.0)
    radius_m: float = 100.0
    _cache: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)

    def crop(self, arr: np.ndarray) -> np.ndarray:
        """Cut the DEM halo off an array computed on the grown window."""
        h = self.halo
        return arr[h : arr.shape[0] - h, h : arr.shape[1] - h]

    def cached(self, key: str, fn: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """A computation shared by several features (aspect sine and cosine, both curvatures), done once."""
        if key not in self._cache:
            self._cache[key] = tuple(self.crop(a) for a in fn())
        return self._cache[key]


Compute = Callable[[WindowInputs], np.ndarray]


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
        compute: the feature on one window of aligned inputs.
        valid_range: (low, high) of physically meaningful values; values outside are counted and reported.

    """

    name: str
    group: str
    units: str
    needs: tuple[str, ...]
    description: str
    compute: Compute = field(compare=False, repr=False)
    valid_range: tuple[float, float] | None = None


def _band(key: str) -> Compute:
    return lambda w: w.refl[key]


def _aspect(w: WindowInputs) -> tuple[np.ndarray, ...]:
    return w.cached("aspect", lambda: terrain.aspect_sin_cos(w.dem, w.dx, w.dy))


def _curvatures(w: WindowInputs) -> tuple[np.ndarray, ...]:
    return w.cached("curvatures", lambda: terrain.curvatures(w.dem, w.dx, w.dy))


def _tc(component: str) -> Compute:
    return lambda w: spectral.tasseled_cap(w.refl, w.sensor, component)


_UNIT = (-1.0, 1.0)
_REFL = (0.0, 1.0)

_DEFS = [
    FeatureDef("RED", OPTICAL, "1", ("red",), "red reflectance", _band("red"), _REFL),
    FeatureDef("GREEN", OPTICAL, "1", ("green",), "green reflectance", _band("green"), _REFL),
    FeatureDef("BLUE", OPTICAL, "1", ("blue",), "blue reflectance", _band("blue"), _REFL),
    FeatureDef("NIR", OPTICAL, "1", ("nir",), "near-infrared reflectance", _band("nir"), _REFL),
    FeatureDef("SWIR1", OPTICAL, "1", ("swir1",), "shortwave-infrared 1 (~1.6 µm) reflectance", _band("swir1"), _REFL),
    FeatureDef("SWIR2", OPTICAL, "1", ("swir2",), "shortwave-infrared 2 (~2.2 µm) reflectance", _band("swir2"), _REFL),
    FeatureDef("DEM", AUXILIARY, "m", ("dem",), "elevation", lambda w: w.crop(w.dem), (-500.0, 9000.0)),
    FeatureDef(
        "EVI",
        OPTICAL,
        "1",
        ("nir", "red", "blue"),
        "enhanced vegetation index",
        lambda w: spectral.evi(w.refl["nir"], w.refl["red"], w.refl["blue"]),
        _UNIT,
    ),
    FeatureDef(
        "FTI",
        AUXILIARY,
        "1",
        ("fti_source",),
        "freeze-thaw index sqrt(TDD)/(sqrt(TDD)+sqrt(FDD))",
        lambda w: w.fti,
        (0.0, 1.0),
    ),
    FeatureDef("LST", AUXILIARY, "K", ("lst",), "land-surface temperature", lambda w: w.lst, (170.0, 360.0)),
    FeatureDef(
        "NBR",
        OPTICAL,
        "1",
        ("nir", "swir2"),
        "normalised burn ratio",
        lambda w: spectral.nbr(w.refl["nir"], w.refl["swir2"]),
        _UNIT,
    ),
    FeatureDef(
        "NDMI",
        OPTICAL,
        "1",
        ("nir", "swir1"),
        "normalised difference moisture index",
        lambda w: spectral.ndmi(w.refl["nir"], w.refl["swir1"]),
        _UNIT,
    ),
    FeatureDef(
        "NDVI",
        OPTICAL,
        "1",
        ("nir", "red"),
        "normalised difference vegetation index",
        lambda w: spectral.ndvi(w.refl["nir"], w.refl["red"]),
        _UNIT,
    ),
    FeatureDef(
        "NDWI",
        OPTICAL,
        "1",
        ("green", "nir"),
        "normalised difference water index (McFeeters)",
        lambda w: spectral.ndwi(w.refl["green"], w.refl["nir"]),
        _UNIT,
    ),
    FeatureDef("TCB", OPTICAL, "1", OPTICAL_KEYS, "Tasseled-Cap brightness", _tc("TCB")),
    FeatureDef("TCG", OPTICAL, "1", OPTICAL_KEYS, "Tasseled-Cap greenness", _tc("TCG")),
    FeatureDef("TCW", OPTICAL, "1", OPTICAL_KEYS, "Tasseled-Cap wetness", _tc("TCW")),
    FeatureDef(
        "LST_ANOMALY",
        AUXILIARY,
        "sigma",
        ("lst",),
        "scene-standardised LST anomaly",
        lambda w: thermal.standardized_anomaly(w.lst, *w.lst_stats),
    ),
    FeatureDef(
        "SLOPE",
        AUXILIARY,
        "degree",
        ("dem",),
        "slope angle (Horn)",
        lambda w: w.crop(terrain.slope_degrees(w.dem, w.dx, w.dy)),
        (0.0, 90.0),
    ),
    FeatureDef(
        "ASPECT_SIN", AUXILIARY, "1", ("dem",), "sine of aspect (east-facing = 1)", lambda w: _aspect(w)[0], _UNIT
    ),
    FeatureDef(
        "ASPECT_COS", AUXILIARY, "1", ("dem",), "cosine of aspect (north-facing = 1)", lambda w: _aspect(w)[1], _UNIT
    ),
    FeatureDef(
        "PLAN_CURV", AUXILIARY, "1/m", ("dem",), "plan curvature (Zevenbergen-Thorne)", lambda w: _curvatures(w)[0]
    ),
    FeatureDef(
        "PROFILE_CURV",
        AUXILIARY,
        "1/m",
        ("dem",),
        "profile curvature (Zevenbergen-Thorne)",
        lambda w: _curvatures(w)[1],
    ),
    FeatureDef(
        "TPI",
        AUXILIARY,
        "m",
        ("dem",),
        "topographic position index at the terrain radius",
        lambda w: w.crop(terrain.tpi(w.dem, w.radius_m, w.dx_scalar, w.dy)),
    ),
    FeatureDef(
        "TRI",
        AUXILIARY,
        "m",
        ("dem",),
        "terrain ruggedness index (RMS difference) at the terrain radius",
        lambda w: w.crop(terrain.tri(w.dem, w.radius_m, w.dx_scalar, w.dy)),
    ),
]

FEATURES: dict[str, FeatureDef] = {f.name: f for f in _DEFS}

# The study's 13 input channels: RGB and its ten factor rasters (alphabetical, as in its release).
PAPER = ("RED", "GREEN", "BLUE", "DEM", "EVI", "FTI", "LST", "NBR", "NDMI", "NDVI", "TCB", "TCG", "TCW")
TERRAIN = ("SLOPE", "ASPECT_SIN", "ASPECT_COS", "PLAN_CURV", "PROFILE_CURV", "TPI", "TRI")
EXTENDED = PAPER + TERRAIN + ("NDWI", "LST_ANOMALY")
# For the inputs people have: optical imagery only (six reflectance bands and the indices that need no sensor
# coefficients), and optical imagery with a DEM (adding elevation and every terrain feature).
OPTICAL_ONLY = ("RED", "GREEN", "BLUE", "NIR", "SWIR1", "SWIR2", "EVI", "NBR", "NDMI", "NDVI", "NDWI")
OPTICAL_DEM = OPTICAL_ONLY + ("DEM",) + TERRAIN
RGB = ("RED", "GREEN", "BLUE")
PRESETS: dict[str, tuple[str, ...]] = {
    "paper": PAPER,
    "extended": EXTENDED,
    "optical_dem": OPTICAL_DEM,
    "optical": OPTICAL_ONLY,
    "rgb": RGB,
}
# What each preset asks of the user, for help texts and the panel.
PRESET_INPUTS: dict[str, str] = {
    "paper": "optical (6 bands), thermal layer, DEM, temperature series or FTI raster",
    "extended": "optical (6 bands), thermal layer, DEM, temperature series or FTI raster",
    "optical_dem": "optical (6 bands) and a DEM",
    "optical": "optical (6 bands) only",
    "rgb": "optical (red, green, blue) only",
}

# Labels of the inputs a feature can need, in the words of the parameters a user fills in.
NEED_LABELS: dict[str, str] = {
    "lst": "a thermal layer",
    "dem": "a DEM",
    "fti_source": "a temperature series or an FTI raster",
    **{k: f"the {k.upper()} band" for k in OPTICAL_KEYS},
}


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


def derive(names: Sequence[str], w: WindowInputs) -> np.ndarray:
    """All requested features of a window, stacked (N, h, w) float32 in the order of `names`."""
    return np.stack([np.asarray(FEATURES[n].compute(w), dtype=np.float32) for n in names])


# ---------------------------------------------------------------------------------------------------
# What the inputs given can supply


@dataclass(frozen=True)
class Available:
    """The inputs a user has given: mapped optical bands, and whether there is each other layer."""

    optical_bands: frozenset[str] = frozenset(OPTICAL_KEYS)
    thermal: bool = False
    dem: bool = False
    fti_source: bool = False
    sensor: str = "other"

    def has(self, need: str) -> bool:
        """Whether an input key (optical key, lst, dem, fti_source) is supplied."""
        if need in OPTICAL_KEYS:
            return need in self.optical_bands
        return {"lst": self.thermal, "dem": self.dem, "fti_source": self.fti_source}[need]


@dataclass(frozen=True)
class UnmetNeed:
    """One input that some requested features need and the inputs given lack.

    Attributes:
        need: the input key (an optical key, "lst", "dem", "fti_source"), "sensor" for Tasseled Cap
            coefficients, or "unknown" for names that are no feature.
        features: the features that need it.
        message: one sentence for the user, e.g. "DEM, SLOPE need a DEM".

    """

    need: str
    features: tuple[str, ...]
    message: str


def _verb(features: Sequence[str]) -> str:
    return "needs" if len(features) == 1 else "need"


def unmet_needs(features: Sequence[str], available: Available) -> list[UnmetNeed]:
    """Every input the features need that `available` lacks, one entry per input (empty: all met)."""
    out = []
    unknown = tuple(f for f in features if f not in FEATURES)
    if unknown:
        out.append(UnmetNeed("unknown", unknown, f"{', '.join(unknown)} cannot be derived by this plugin"))
    known = [f for f in features if f in FEATURES]
    order = ("lst", "dem", "fti_source", *OPTICAL_KEYS)
    for need in order:
        users = tuple(f for f in known if need in FEATURES[f].needs)
        if users and not available.has(need):
            out.append(UnmetNeed(need, users, f"{', '.join(users)} {_verb(users)} {NEED_LABELS[need]}"))
    tc = tuple(f for f in known if f in ("TCB", "TCG", "TCW"))
    if tc and available.sensor not in spectral.TASSELED_CAP:
        names = ", ".join(spectral.SENSORS[k] for k in spectral.TASSELED_CAP)
        which = (
            "the optical layer's band names and metadata do not tell which: choose it in the sensor parameter"
            if available.sensor == "auto"
            else f"not '{spectral.SENSORS.get(available.sensor, available.sensor)}'"
        )
        out.append(
            UnmetNeed(
                "sensor",
                tc,
                f"{', '.join(tc)} {_verb(tc)} a sensor with published Tasseled Cap coefficients ({names}); {which}",
            )
        )
    return out


def fitting_preset(available: Available) -> str | None:
    """The richest preset whose every need the inputs meet (None when not even rgb fits)."""
    for name in ("extended", "paper", "optical_dem", "optical", "rgb"):
        if not unmet_needs(PRESETS[name], available):
            return name
    return None


def describe_unmet(
    unmet: Sequence[UnmetNeed], available: Available | None = None, subject: str = "The requested features (bands)"
) -> str:
    """All unmet needs in one message, with the preset that fits what was given.

    Args:
        unmet: the unmet needs.
        available: what was given (for the fitting preset), or None.
        subject: what needs the inputs, e.g. "This model's bands".

    """
    # One clause per missing layer, and one for all optical bands that are not mapped.
    bands = [u for u in unmet if u.need in OPTICAL_KEYS]
    parts = [u.message for u in unmet if u.need not in OPTICAL_KEYS]
    if bands:
        users = tuple(dict.fromkeys(f for u in bands for f in u.features))
        names = ", ".join(u.need.upper() for u in bands)
        parts.append(f"{', '.join(users)} {_verb(users)} the optical band(s) {names}")
    listed = "; ".join(parts)
    text = f"{subject} need inputs that were not given: {listed}."
    if available is not None:
        preset = fitting_preset(available)
        if preset:
            text += f" With the inputs given, the '{preset}' preset fits ({', '.join(PRESETS[preset])})."
        else:
            text += " Not even the 'rgb' preset fits the inputs given: map the red, green and blue bands."
    return text


def check_requirements(
    features: Sequence[str], available: Available, subject: str = "The requested features (bands)"
) -> None:
    """Refuse features the inputs cannot supply, listing every missing input at once.

    Raises:
        MissingInputsError: one or more inputs are missing; `.unmet` holds them.

    """
    unmet = unmet_needs(features, available)
    if unmet:
        raise MissingInputsError(describe_unmet(unmet, available, subject), tuple(unmet))


class MissingInputsError(FeatureError):
    """Features were asked for whose inputs were not given (all of them listed in `unmet`)."""

    def __init__(self, message: str, unmet: tuple[UnmetNeed, ...]) -> None:
        super().__init__(message)
        self.unmet = unmet


def needed_inputs(features: Sequence[str]) -> list[str]:
    """The inputs a band list needs, in a user's words (for model cards and the panel).

    E.g. ["optical bands BLUE, GREEN, RED, NIR", "a thermal layer", "a DEM"].
    """
    needs = required_inputs([f for f in features if f in FEATURES])
    optical = [k.upper() for k in OPTICAL_KEYS if k in needs]
    out = [f"optical bands {', '.join(optical)}"] if optical else []
    out += [NEED_LABELS[k] for k in ("lst", "dem", "fti_source") if k in needs]
    if any(f in ("TCB", "TCG", "TCW") for f in features):
        out.append("a sensor with Tasseled-Cap coefficients")
    return out
