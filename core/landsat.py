"""Separate Landsat band files (B1…B7.TIF) as one optical raster: a VRT with named, calibrated bands.

Landsat scenes come as one GeoTIFF per band plus a metadata file (`*_MTL.txt`). `build_landsat_optical`
stacks the reflective bands (thermal, panchromatic and cirrus bands are left out and reported) into one
raster, in band-number order, with band descriptions such as "Blue (B2)". Where the MTL gives
`REFLECTANCE_MULT_BAND_x` / `REFLECTANCE_ADD_BAND_x`, each band is calibrated in the VRT itself (a complex
source with scale and offset, Float32): Level-2 surface reflectance as given, Level-1 top-of-atmosphere
reflectance divided by the sine of the sun elevation (USGS's formula). Without coefficients the bands stay
digital numbers and `LandsatOptical.calibrated` is False, so callers must say so.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import RtsFusionError

# Reflective band numbers and their names per mission family (Landsat 4/5 TM and 7 ETM+ share them).
REFLECTIVE_BANDS: dict[str, dict[int, str]] = {
    "tm": {1: "Blue", 2: "Green", 3: "Red", 4: "NIR", 5: "SWIR1", 7: "SWIR2"},
    "oli": {1: "Coastal", 2: "Blue", 3: "Green", 4: "Red", 5: "NIR", 6: "SWIR1", 7: "SWIR2"},
}
# The plugin's sensor key (core.spectral.SENSORS) for each mission family.
SENSOR_KEY = {"tm": "landsat5", "oli": "landsat8"}
NODATA_OUT = -9999.0
# Collection 1/2 products mark fill pixels with 0 when the file itself declares no nodata value.
LANDSAT_FILL = 0

_BAND_RE = re.compile(r"_(SR_|ST_)?B(\d{1,2})(?:_VCID_\d)?\.TIF{1,2}$", re.IGNORECASE)
_SCENE_RE = re.compile(r"^L([COTEM])0?(\d)", re.IGNORECASE)


@dataclass(frozen=True)
class LandsatBand:
    """One band of the stacked raster: its file, Landsat band number, name and calibration."""

    path: str
    number: int
    name: str
    scale: float | None = None
    offset: float | None = None

    @property
    def description(self) -> str:
        """The band description written into the raster, e.g. "Blue (B2)"."""
        return f"{self.name} (B{self.number})"


@dataclass(frozen=True)
class LandsatOptical:
    """What `build_landsat_optical` made: bands in order, the sensor key, and what it left out."""

    path: str
    bands: tuple[LandsatBand, ...]
    sensor: str
    mtl: str | None
    calibration: str  # "surface reflectance", "top-of-atmosphere reflectance" or "digital numbers"
    skipped: tuple[str, ...]  # files left out (thermal, panchromatic, cirrus), with why

    @property
    def calibrated(self) -> bool:
        """True when the bands hold reflectance (0–1), not digital numbers."""
        return self.calibration != "digital numbers"


def parse_mtl(path: str) -> dict[str, dict[str, str]]:
    """A Landsat MTL file as {group name: {key: value}} (values without quotes; innermost group wins)."""
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "=" not in line:
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            if key == "GROUP":
                stack.append(value)
                groups.setdefault(value, {})
            elif key == "END_GROUP":
                if stack:
                    stack.pop()
            elif stack:
                groups[stack[-1]][key] = value.strip('"')
    if not groups:
        raise RtsFusionError(f"'{path}' is not a Landsat metadata (MTL) file: it has no GROUP = … entries.")
    return groups


def band_number(path: str) -> tuple[int, str]:
    """The Landsat band number of a band file and its product prefix ("" , "SR_" or "ST_")."""
    m = _BAND_RE.search(os.path.basename(path))
    if not m:
        raise RtsFusionError(
            f"'{os.path.basename(path)}' is not named like a Landsat band file (…_B4.TIF or …_SR_B4.TIF), "
            "so its band cannot be told."
        )
    return int(m.group(2)), (m.group(1) or "").upper()


def mission_family(paths: Sequence[str], mtl: dict[str, dict[str, str]] | None) -> str:
    """'tm' (Landsat 4/5/7) or 'oli' (Landsat 8/9), from the MTL's SPACECRAFT_ID or the file names."""
    if mtl:
        for values in mtl.values():
            craft = values.get("SPACECRAFT_ID", "")
            m = re.search(r"(\d)", craft)
            if m:
                return "oli" if int(m.group(1)) >= 8 else "tm"
    numbers = set()
    for p in paths:
        m = _SCENE_RE.match(os.path.basename(p))
        if m:
            numbers.add(int(m.group(2)))
    if len(numbers) == 1:
        return "oli" if numbers.pop() >= 8 else "tm"
    raise RtsFusionError(
        "Cannot tell which Landsat mission the band files come from (no MTL file and the names do not start "
        "with LC08/LC09/LE07/LT05/LT04). Give the scene's *_MTL.txt."
    )


def find_mtl(paths: Sequence[str]) -> str | None:
    """The *_MTL.txt beside the band files whose name shares their scene prefix, if there is one."""
    folder = os.path.dirname(os.path.abspath(paths[0]))
    stem = _BAND_RE.split(os.path.basename(paths[0]))[0]
    candidates = [f for f in os.listdir(folder) if f.upper().endswith("_MTL.TXT")]
    # Level-2 names keep the scene id but differ in the processing-level field (L1TP/L2SP), so match the id.
    scene_id = stem.split("_")
    for f in sorted(candidates):
        if f.upper().startswith(stem.upper()) or (len(scene_id) > 3 and f.split("_")[2:4] == scene_id[2:4]):
            return os.path.join(folder, f)
    return None


def _calibration(mtl: dict[str, dict[str, str]], number: int, level2: bool) -> tuple[float, float] | tuple[None, None]:
    """(scale, offset) turning this band's values into reflectance, or (None, None) without coefficients."""
    key_m, key_a = f"REFLECTANCE_MULT_BAND_{number}", f"REFLECTANCE_ADD_BAND_{number}"
    wanted = "SURFACE_REFLECTANCE" if level2 else "RADIOMETRIC_RESCALING"
    for group, values in mtl.items():
        if wanted in group and key_m in values and key_a in values:
            mult, add = float(values[key_m]), float(values[key_a])
            if level2:
                return mult, add
            sun = next((float(v["SUN_ELEVATION"]) for v in mtl.values() if "SUN_ELEVATION" in v), None)
            if sun is None or sun <= 0:
                raise RtsFusionError(
                    "The MTL gives top-of-atmosphere reflectance coefficients but no usable SUN_ELEVATION, "
                    "which the correction needs."
                )
            s = math.sin(math.radians(sun))
            return mult / s, add / s
    return None, None


def plan_landsat_bands(
    paths: Sequence[str], mtl_path: str | None = None
) -> tuple[list[LandsatBand], str, str, list[str], str | None]:
    """Which files become which bands, with calibration: (bands, sensor key, calibration, skipped, mtl).

    Raises:
        RtsFusionError: no reflective band, a band given twice, files of two different scenes/levels, or
            coefficients for only some bands.

    """
    if not paths:
        raise RtsFusionError("Give the Landsat band files (…_B1.TIF … _B7.TIF).")
    for p in paths:
        if not os.path.isfile(p):
            raise RtsFusionError(f"The band file '{p}' does not exist.")
    numbered = [(p, *band_number(p)) for p in paths]
    mtl_path = mtl_path or find_mtl(paths)
    mtl = parse_mtl(mtl_path) if mtl_path else None
    family = mission_family(paths, mtl)
    reflective = REFLECTIVE_BANDS[family]
    prefixes = {prefix for _p, _n, prefix in numbered if prefix != "ST_"}
    if len(prefixes) > 1:
        raise RtsFusionError(
            "The band files mix Level-1 (…_B4.TIF) and Level-2 surface reflectance (…_SR_B4.TIF) products; "
            "give the bands of one product."
        )
    level2 = prefixes == {"SR_"}
    bands, skipped, seen = [], [], {}
    for p, number, prefix in sorted(numbered, key=lambda t: t[1]):
        name = os.path.basename(p)
        if prefix == "ST_" or number not in reflective:
            why = "surface temperature" if prefix == "ST_" else "thermal, panchromatic or cirrus band"
            skipped.append(f"{name} ({why}: give it as the thermal layer if it is thermal)")
            continue
        if number in seen:
            raise RtsFusionError(f"Band B{number} is given twice: '{seen[number]}' and '{name}'.")
        seen[number] = name
        scale, offset = _calibration(mtl, number, level2) if mtl else (None, None)
        bands.append(LandsatBand(os.path.abspath(p), number, reflective[number], scale, offset))
    if not bands:
        raise RtsFusionError("None of the files is a reflective Landsat band (B1–B7).")
    have = [b.scale is not None for b in bands]
    if any(have) and not all(have):
        missing = [f"B{b.number}" for b in bands if b.scale is None]
        raise RtsFusionError(f"The MTL gives reflectance coefficients for some bands but not for {', '.join(missing)}.")
    if all(have):
        calibration = "surface reflectance" if level2 else "top-of-atmosphere reflectance"
    else:
        calibration = "digital numbers"
    return bands, SENSOR_KEY[family], calibration, skipped, mtl_path


def _vrt_xml(bands: Sequence[LandsatBand], calibrated: bool) -> str:
    """The VRT text for the bands (GDAL lays out the grid; bands get descriptions and calibration here)."""
    from osgeo import gdal

    gdal.UseExceptions()
    sources = []
    for b in bands:
        ds = gdal.Open(b.path)
        if ds is None or not ds.GetProjection():
            raise RtsFusionError(f"'{os.path.basename(b.path)}' has no coordinate reference system.")
        nodata = ds.GetRasterBand(1).GetNoDataValue()
        sources.append((ds.GetProjection(), LANDSAT_FILL if nodata is None else nodata))
        ds = None
    from osgeo import osr

    first = osr.SpatialReference(wkt=sources[0][0])
    for b, (wkt, _nd) in zip(bands[1:], sources[1:]):
        if not first.IsSame(osr.SpatialReference(wkt=wkt)):
            raise RtsFusionError(
                f"'{os.path.basename(b.path)}' is in another coordinate reference system than "
                f"'{os.path.basename(bands[0].path)}'; band files of one scene share one."
            )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bands.vrt")
        opts = gdal.BuildVRTOptions(
            separate=True,
            resolution="highest",
            srcNodata=" ".join(str(nd) for _w, nd in sources),
            VRTNodata=" ".join(str(NODATA_OUT if calibrated else nd) for _w, nd in sources),
        )
        vrt = gdal.BuildVRT(path, [b.path for b in bands], options=opts)
        if vrt is None:
            raise RtsFusionError("GDAL could not stack the band files into one raster.")
        vrt = None
        tree = ET.parse(path)
    root = tree.getroot()
    for b, elem in zip(bands, root.findall("VRTRasterBand")):
        desc = ET.SubElement(elem, "Description")
        desc.text = b.description
        elem.remove(desc)
        elem.insert(0, desc)
        for src in elem.iter("SourceFilename"):
            src.set("relativeToVRT", "0")
            src.text = b.path
        if calibrated:
            elem.set("dataType", "Float32")
            for src in list(elem.findall("SimpleSource")) + list(elem.findall("ComplexSource")):
                src.tag = "ComplexSource"
                ET.SubElement(src, "ScaleOffset").text = repr(b.offset)
                ET.SubElement(src, "ScaleRatio").text = repr(b.scale)
        meta = ET.SubElement(elem, "Metadata")
        ET.SubElement(meta, "MDI", key="LANDSAT_BAND").text = f"B{b.number}"
        ET.SubElement(meta, "MDI", key="SOURCE_FILE").text = os.path.basename(b.path)
        if calibrated:
            ET.SubElement(meta, "MDI", key="CALIBRATION").text = f"value = DN × {b.scale!r} + {b.offset!r}"
    return ET.tostring(root, encoding="unicode")


def build_landsat_optical(paths: Sequence[str], output: str, mtl_path: str | None = None) -> LandsatOptical:
    """Stack separate Landsat band files into one optical raster with named (and calibrated) bands.

    Args:
        paths: the band files (any order; thermal/panchromatic/cirrus files are left out and reported).
        output: a `.vrt` (references the band files, which must stay where they are) or a `.tif` (a copy).
        mtl_path: the scene's `*_MTL.txt`; None looks for it beside the band files.

    Returns:
        What was written; `calibrated` is False when the bands stay digital numbers.

    Raises:
        RtsFusionError: unusable band files (see `plan_landsat_bands`), or an output that would overwrite
            one of the band files.

    """
    bands, sensor, calibration, skipped, mtl_path = plan_landsat_bands(paths, mtl_path)
    out = os.path.abspath(output)
    if any(os.path.abspath(p) == out for p in paths) or (mtl_path and os.path.abspath(mtl_path) == out):
        raise RtsFusionError(f"The output '{output}' is one of the input files; choose another name.")
    xml = _vrt_xml(bands, calibration != "digital numbers")
    folder = os.path.dirname(out) or "."
    os.makedirs(folder, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=".landsat_", suffix=os.path.splitext(out)[1] or ".vrt", dir=folder)
    os.close(fd)
    try:
        if out.lower().endswith(".vrt"):
            with open(part, "w", encoding="utf-8") as f:
                f.write(xml)
        else:
            from osgeo import gdal

            gdal.UseExceptions()
            src = gdal.Open(xml)
            dst = gdal.Translate(
                part,
                src,
                options=gdal.TranslateOptions(
                    format="GTiff", creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]
                ),
            )
            if dst is None:
                raise RtsFusionError(f"GDAL could not write '{output}'.")
            dst.FlushCache()
            dst = src = None
        os.replace(part, out)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return LandsatOptical(out, tuple(bands), sensor, mtl_path, calibration, tuple(skipped))
