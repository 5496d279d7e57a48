"""Inputs of the bad-input catalogue: a tiny scene, its stack, a tiny model and the mistakes users make."""

from __future__ import annotations

import os
import shutil

import numpy as np
import rasterio
from osgeo import ogr, osr
from rasterio.transform import from_origin


def _points_or_lines(path: str, layer_name: str, crs_wkt: str, geoms: list[str], kind: int, append: bool) -> None:
    ds = ogr.Open(path, 1) if append else ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = ds.CreateLayer(layer_name, srs, kind)
    layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    for i, wkt in enumerate(geoms):
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetField("id", i + 1)
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feat)
    ds = None  # noqa: F841 - closing flushes


def _raster(path: str, data: np.ndarray, like: str | None = None, georef: bool = True, **extra) -> str:
    data = data if data.ndim == 3 else data[None]
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2]}
    profile["dtype"] = data.dtype.name
    if georef and like:
        with rasterio.open(like) as src:
            profile.update(crs=src.crs, transform=src.transform)
    elif georef:
        profile.update(crs="EPSG:32606", transform=from_origin(0, 0, 10, 10))
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def build_catalogue_data(folder: str, with_model: bool = True) -> dict[str, str]:
    """Write every input the catalogue uses into folder; returns name → path."""
    from rts_fusion.core.features import PAPER
    from rts_fusion.core.synthetic import fuse_sample_scene, generate_sample_scene
    from rts_fusion.core.vector import PolygonRecord, read_polygons, write_polygons

    os.makedirs(folder, exist_ok=True)
    scene = generate_sample_scene(os.path.join(folder, "scene"), size=64, seed=3)
    d = {
        "optical": scene.optical,
        "thermal": scene.thermal,
        "dem": scene.dem,
        "series": scene.temperature_series,
        "slumps": scene.slumps,
    }
    d["stack"] = fuse_sample_scene(scene, PAPER, os.path.join(folder, "stack.tif"))
    with rasterio.open(d["stack"]) as src:
        crs_wkt = src.crs.to_wkt()
        left, bottom, right, top = src.bounds
        h, w = src.height, src.width
    cx, cy = (left + right) / 2, (bottom + top) / 2

    # Probability-like rasters on the stack's grid.
    zero = np.zeros((h, w), np.float32)
    d["prob_zero"] = _raster(os.path.join(folder, "prob_zero.tif"), zero, like=d["stack"])
    blob = zero.copy()
    blob[20:40, 20:40] = 0.9
    d["prob_blob"] = _raster(os.path.join(folder, "prob_blob.tif"), blob, like=d["stack"])
    d["rgb3"] = _raster(os.path.join(folder, "rgb3.tif"), np.stack([blob, blob, blob]), like=d["stack"])
    d["percent"] = _raster(os.path.join(folder, "percent.tif"), blob * 100, like=d["stack"])
    d["ungeoref"] = _raster(os.path.join(folder, "ungeoref.tif"), zero, georef=False)
    far = os.path.join(folder, "dem_far.tif")
    with rasterio.open(scene.dem) as src:
        dem = src.read(1)
        t = src.transform
        shift = 5.0 if src.crs.is_geographic else 5e4  # well beside the scene, still on the globe
        _raster(far, dem, crs=src.crs, transform=rasterio.Affine(t.a, t.b, t.c + shift, t.d, t.e, t.f))
        d["dem_offglobe"] = _raster(  # coordinates no CRS can hold: a georeferencing mistake
            os.path.join(folder, "dem_offglobe.tif"),
            dem,
            crs=src.crs,
            transform=rasterio.Affine(t.a, t.b, t.c + 1e6, t.d, t.e, t.f + 1e6),
        )
        d["dem_nodata"] = _raster(
            os.path.join(folder, "dem_nodata.tif"), np.full_like(dem, -9999), crs=src.crs, transform=t, nodata=-9999
        )
    d["dem_far"] = far

    # Vector layers: points, lines, several layers in one GeoPackage, empty, far away.
    pts = [f"POINT ({cx + i * 30} {cy})" for i in range(3)]
    lines = [f"LINESTRING ({cx} {cy}, {cx + 100} {cy + 100})"]
    d["points"] = os.path.join(folder, "points.gpkg")
    _points_or_lines(d["points"], "points", crs_wkt, pts, ogr.wkbPoint, False)
    d["lines"] = os.path.join(folder, "lines.gpkg")
    _points_or_lines(d["lines"], "lines", crs_wkt, lines, ogr.wkbLineString, False)
    polygons = read_polygons(scene.slumps, crs_wkt)
    records = [PolygonRecord(p[0], {"id": i + 1}, tuple(p[1:])) for i, p in enumerate(polygons)]
    multi = os.path.join(folder, "multi.gpkg")
    _points_or_lines(multi, "gauges", crs_wkt, pts, ogr.wkbPoint, False)  # the first layer is points
    write_polygons(multi, "slumps", crs_wkt, records, append=True)
    d["multi"] = multi
    d["multi_slumps"] = f"{multi}|layername=slumps"
    d["slumps_copy"] = os.path.join(folder, "slumps_copy.gpkg")
    write_polygons(d["slumps_copy"], "slumps", crs_wkt, records)
    d["empty"] = os.path.join(folder, "empty.gpkg")
    write_polygons(d["empty"], "slumps", crs_wkt, [], fields=[("id", 0)])
    shifted = [
        PolygonRecord([(x + 1e6, y + 1e6) for x, y in r.exterior], r.attributes, ())
        for r in records  # far away: overlaps neither the scene nor its inventory
    ]
    d["far"] = os.path.join(folder, "far.gpkg")
    write_polygons(d["far"], "slumps", crs_wkt, shifted)

    # Files that are not what their name says, and links to inputs.
    for name, ext in (("corrupt_tif", ".tif"), ("corrupt_gpkg", ".gpkg"), ("corrupt_model", ".safetensors")):
        d[name] = os.path.join(folder, f"corrupt{ext}")
        with open(d[name], "w") as fh:
            fh.write("this is not a raster, a GeoPackage or a model\n")
    d["manifest_bad"] = os.path.join(folder, "manifest.csv")
    with open(d["manifest_bad"], "w") as fh:
        fh.write("image,label\nnone.tif,none.tif\n")
    d["slumps_link"] = os.path.join(folder, "slumps_link.gpkg")
    os.symlink(scene.slumps, d["slumps_link"])
    d["optical_hardlink"] = os.path.join(folder, "optical_hardlink.tif")
    os.link(scene.optical, d["optical_hardlink"])
    d["stack_link"] = os.path.join(folder, "stack_link.tif")
    os.symlink(d["stack"], d["stack_link"])
    d["a_file"] = os.path.join(folder, "a_file.txt")
    with open(d["a_file"], "w") as fh:
        fh.write("a file where a folder is expected\n")

    if with_model:
        d["model"] = _tiny_model(d["stack"], scene.slumps, os.path.join(folder, "tiny.safetensors"))
    d["missing"] = os.path.join(folder, "does_not_exist.tif")
    d["missing_gpkg"] = os.path.join(folder, "does_not_exist.gpkg")
    return d


def _tiny_model(stack: str, slumps: str, out: str) -> str:
    """A tiny FusionSA-SegFormer trained for one short epoch: enough to run detection, not to detect well."""
    import torch
    from rts_fusion.core.features import PAPER
    from rts_fusion.models.train import TrainConfig, train_from_stack

    torch.set_num_threads(1)
    cfg = TrainConfig(
        encoder="tiny",
        decoder_dim=16,
        tile_size=32,
        epochs=1,
        batch_size=4,
        chips_per_epoch=8,
        patience=1,
        seed=1,
        split="random",
    )
    return train_from_stack(stack, slumps, out, cfg, bands=PAPER).package


def copy_of(path: str, folder: str, name: str) -> str:
    """A copy of a file under a new name (a pre-existing output the run must not destroy)."""
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, name)
    shutil.copyfile(path.split("|")[0], dst)
    return dst
