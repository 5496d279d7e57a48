"""Minimal polygon I/O through GDAL's OGR (the same GDAL as rasterio and QGIS), QGIS-free."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from osgeo import ogr, osr

ogr.UseExceptions()
osr.UseExceptions()

Ring = Sequence[tuple[float, float]]


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

    Field types are taken from the first record's attribute values, or from `fields` (name, example value)
    so that an empty layer still gets its attribute table.
    """
    if os.path.exists(path) and not append:
        os.remove(path)
    driver = ogr.GetDriverByName("GPKG")
    ds = ogr.Open(path, 1) if append and os.path.exists(path) else driver.CreateDataSource(path)
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


def _open_layer(path: str, layer_name: str | None = None) -> tuple[ogr.DataSource, ogr.Layer]:
    """Open a layer (the first by default; a path may carry QGIS's '|layername=NAME'); keep the data source."""
    path, _, suffix = path.partition("|")
    if suffix.startswith("layername="):
        layer_name = layer_name or suffix.split("=", 1)[1]
    ds = ogr.Open(path)
    if ds is None:
        raise ValueError(f"Cannot open vector file '{path}'.")
    layer = ds.GetLayerByName(layer_name) if layer_name else ds.GetLayer(0)
    if layer is None:
        raise ValueError(f"'{path}' has no layer {layer_name!r}.")
    return ds, layer


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

    A path may carry QGIS's '|layername=NAME' suffix. Features without geometry are skipped.
    """
    _ds, layer = _open_layer(path, layer_name)  # the data source must outlive the layer's use
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
        geom = geom.Clone()
        if transform is not None:
            geom.Transform(transform)
        out.append((feat.GetFID(), geom))
    return out


def layer_crs_wkt(path: str) -> str:
    """The WKT of a vector layer's CRS ('' when it has none)."""
    _ds, layer = _open_layer(path)
    srs = layer.GetSpatialRef()
    return srs.ExportToWkt() if srs is not None else ""
