"""Minimal polygon I/O through GDAL's OGR (the same GDAL as rasterio and QGIS), QGIS-free."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from osgeo import ogr, osr

from .errors import RtsFusionError
from .outputs import atomic_output

ogr.UseExceptions()
osr.UseExceptions()

Ring = Sequence[tuple[float, float]]


class VectorError(RtsFusionError):
    """A vector layer cannot be read as needed (missing, no such layer, not polygons)."""


@dataclass(frozen=True)
class PolygonRecord:
    """One polygon (exterior ring, optional holes) with its attributes."""

    exterior: Ring
    attributes: dict[str, int | float | str]
    holes: tuple[Ring, ...] = ()


def _ogr_type(value: object) -> int:
    if isinstance(value, bool | int):
        return ogr.OFTInteger64
    if isinstance(value, float):
        return ogr.OFTReal
    return ogr.OFTString


def write_polygons(
    path: str,
    layer_name: str,
    crs_wkt: str,
    records: Sequence[PolygonRecord],
    append: bool = False,
    fields: Sequence[tuple[str, int | float | str]] = (),
) -> None:
    """Write polygons to a GeoPackage layer: a new file, or a new layer of an existing one with append.

    A new file is written beside the path and moved into place only when complete, so a failure leaves any
    file already at the path untouched. Field types are taken from the first record's attribute values, or
    from `fields` (name, example value) so that an empty layer still gets its attribute table.
    """
    if append and os.path.exists(path):
        _write_layer(path, layer_name, crs_wkt, records, fields, create=False)
        return
    with atomic_output(path, f"layer '{layer_name}'") as tmp:
        _write_layer(tmp, layer_name, crs_wkt, records, fields, create=True)


def _write_layer(
    path: str,
    layer_name: str,
    crs_wkt: str,
    records: Sequence[PolygonRecord],
    fields: Sequence[tuple[str, int | float | str]],
    create: bool,
) -> None:
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path) if create else ogr.Open(path, 1)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = ds.CreateLayer(layer_name, srs, ogr.wkbPolygon, options=["OVERWRITE=YES"])
    ds.StartTransaction()
    for key, value in fields or (records[0].attributes.items() if records else ()):
        layer.CreateField(ogr.FieldDefn(key, _ogr_type(value)))
    defn = layer.GetLayerDefn()
    for rec in records:
        poly = ogr.Geometry(ogr.wkbPolygon)
        for ring_coords in (rec.exterior, *rec.holes):
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for x, y in ring_coords:
                ring.AddPoint_2D(float(x), float(y))
            ring.CloseRings()
            poly.AddGeometry(ring)
        feat = ogr.Feature(defn)
        feat.SetGeometry(poly)
        for key, value in rec.attributes.items():
            if value is None:
                feat.SetFieldNull(key)
            else:
                feat.SetField(key, value)
        layer.CreateFeature(feat)
    ds.CommitTransaction()
    ds = None  # noqa: F841 - closing the data source flushes it


def split_source(source: str) -> tuple[str, dict[str, str]]:
    """A QGIS layer source 'path|layername=NAME|subset=…' as (path, {'layername': NAME, 'subset': …})."""
    path, *parts = str(source).split("|")
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            options[key.strip().lower()] = value
    return path, options


_POLYGON_TYPES = (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface)
_KIND = {
    ogr.wkbPoint: "points",
    ogr.wkbMultiPoint: "points",
    ogr.wkbLineString: "lines",
    ogr.wkbMultiLineString: "lines",
    ogr.wkbCircularString: "lines",
    ogr.wkbCompoundCurve: "lines",
    ogr.wkbMultiCurve: "lines",
    ogr.wkbNone: "no geometry (a table)",
}


def open_layer(path: str, layer_name: str | None = None) -> tuple[ogr.DataSource, ogr.Layer]:
    """Open a layer and keep its data source: the named one, or the one QGIS's source string names.

    A path may carry QGIS's '|layername=NAME' (or '|layerid=N') and '|subset=FILTER' suffixes: the layer chosen
    inside a GeoPackage is the one read, and a layer filter is applied. Without a name, the file's only (first)
    layer is read.

    Raises:
        VectorError: The file cannot be opened or has no such layer.

    """
    file_path, options = split_source(path)
    layer_name = layer_name or options.get("layername")
    ds = ogr.Open(file_path)
    if ds is None:
        raise VectorError(f"Cannot open the vector file '{file_path}' (missing, or not a vector format).")
    if layer_name:
        layer = ds.GetLayerByName(layer_name)
    elif options.get("layerid", "").isdigit():
        layer = ds.GetLayer(int(options["layerid"]))
    else:
        layer = ds.GetLayer(0)
    if layer is None:
        names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
        raise VectorError(
            f"'{file_path}' has no layer {layer_name or options.get('layerid')!r}; it holds: {', '.join(names)}."
        )
    if options.get("subset"):
        try:
            layer.SetAttributeFilter(options["subset"])
        except RuntimeError as exc:
            raise VectorError(f"The filter {options['subset']!r} on '{file_path}' cannot be applied: {exc}") from exc
    return ds, layer


def _require_polygons(path: str, layer: ogr.Layer, geom: ogr.Geometry | None = None) -> None:
    kind = ogr.GT_Flatten(geom.GetGeometryType() if geom is not None else layer.GetGeomType())
    if kind in _POLYGON_TYPES or (geom is None and kind in (ogr.wkbUnknown, ogr.wkbGeometryCollection)):
        return
    what = _KIND.get(kind, ogr.GeometryTypeToName(kind).lower())
    raise VectorError(
        f"The layer '{layer.GetName()}' of '{split_source(path)[0]}' holds {what}; polygons are needed "
        "(slump outlines or areas). Give a polygon layer, or buffer the features into polygons first."
    )


def read_polygons(
    path: str, target_crs_wkt: str | None = None, layer_name: str | None = None
) -> list[list[list[tuple[float, float]]]]:
    """Read every polygon of a layer (the first by default) as lists of rings, optionally reprojected.

    A path may carry QGIS's '|layername=NAME' suffix. Multipolygons are split into their parts.
    Returns a list of polygons, each [exterior, *holes].
    """
    out = []
    for _, geom in read_geometries(path, target_crs_wkt, layer_name):
        if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbPolygon:
            parts = [geom]
        else:
            parts = [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())]
        for part in parts:
            rings = []
            for i in range(part.GetGeometryCount()):
                ring = part.GetGeometryRef(i)
                rings.append([(ring.GetX(j), ring.GetY(j)) for j in range(ring.GetPointCount())])
            if rings:
                out.append(rings)
    return out


def read_geometries(
    path: str, target_crs_wkt: str | None = None, layer_name: str | None = None
) -> list[tuple[int, ogr.Geometry]]:
    """Every feature's geometry (cloned, optionally reprojected) with its feature id, in layer order.

    A path may carry QGIS's '|layername=NAME' suffix. Features without geometry are skipped; point or line
    geometries are refused (polygons are needed).
    """
    _ds, layer = open_layer(path, layer_name)  # the data source must outlive the layer's use
    _require_polygons(path, layer)
    transform = None
    if target_crs_wkt and layer.GetSpatialRef() is not None:
        src = layer.GetSpatialRef().Clone()
        dst = osr.SpatialReference()
        dst.ImportFromWkt(target_crs_wkt)
        src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(src, dst)
    out = []
    for feat in layer:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        _require_polygons(path, layer, geom)
        geom = geom.Clone()
        if transform is not None:
            geom.Transform(transform)
        out.append((feat.GetFID(), geom))
    return out


def layer_crs_wkt(path: str, layer_name: str | None = None) -> str:
    """The WKT of a vector layer's CRS ('' when it has none); the path may carry '|layername=NAME'."""
    _ds, layer = open_layer(path, layer_name)
    srs = layer.GetSpatialRef()
    return srs.ExportToWkt() if srs is not None else ""
