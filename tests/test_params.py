"""processing_provider.params: shared choices, vector layer sources, output safety checks."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer
from rts_fusion.core.vector import PolygonRecord, read_polygons, write_polygons
from rts_fusion.models.registry import ARCHITECTURES
from rts_fusion.processing_provider.params import ENCODERS, TRAIN_ARCHITECTURES, train_encoder, vector_path

WKT = 'PROJCS["WGS 84 / UTM zone 6N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-147],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1]]'  # noqa: E501
SQUARE = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]


def test_train_choices_keep_their_indexes_and_cover_the_registry():
    ids = [a for a, _ in TRAIN_ARCHITECTURES]
    assert ids[:5] == ["fusion_sa_segformer", "sa_segformer", "ca_segformer", "segformer", "fusion_sa_segformer_ds"]
    assert ids[5:14] == ["cnn3", "unet_resnet34", "unetpp_resnet34", "deeplabv3plus_resnet34", "fcn_resnet50"] + [
        "unet_convnext",
        "unet_swin",
        "sa_convnext",
        "ca_convnext",
    ]
    assert sorted(ids) == sorted(ARCHITECTURES)  # every registry architecture can be trained
    assert ENCODERS == ("b0", "b1", "b2", "b3", "b4", "b5", "tiny")
    assert train_encoder("unet_resnet34", "b2") == "standard" and train_encoder("segformer", "b2") == "b2"


@pytest.fixture()
def two_layer_gpkg(tmp_path):
    from osgeo import ogr, osr

    path = str(tmp_path / "two.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(WKT)
    layer = ds.CreateLayer("gauges", srs, ogr.wkbPoint)
    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetGeometry(ogr.CreateGeometryFromWkt("POINT (5 5)"))
    layer.CreateFeature(feat)
    ds = None
    write_polygons(path, "slumps", WKT, [PolygonRecord(SQUARE, {"id": 1})], append=True)
    return path


def test_vector_path_keeps_the_chosen_layer(qgis_app, two_layer_gpkg):
    layer = QgsVectorLayer(f"{two_layer_gpkg}|layername=slumps", "slumps", "ogr")
    source = vector_path(layer, "inventory")
    assert source == f"{two_layer_gpkg}|layername=slumps"
    assert len(read_polygons(source)) == 1  # the core reads that layer, not the points layer stored first


def test_vector_path_refuses_points_naming_the_parameter(qgis_app, two_layer_gpkg):
    layer = QgsVectorLayer(f"{two_layer_gpkg}|layername=gauges", "gauges", "ogr")
    with pytest.raises(QgsProcessingException, match="ground truth layer 'gauges' holds point.*polygons are needed"):
        vector_path(layer, "ground truth")
    memory = QgsVectorLayer("Polygon?crs=EPSG:32606", "scratch", "memory")
    with pytest.raises(QgsProcessingException, match="not a local vector file"):
        vector_path(memory, "inventory")


def test_core_reader_refuses_points_too(two_layer_gpkg):
    from rts_fusion.core.errors import RtsFusionError

    with pytest.raises(RtsFusionError, match="polygons are needed"):
        read_polygons(two_layer_gpkg)  # the first layer is the points layer
    with pytest.raises(RtsFusionError, match="has no layer 'lakes'; it holds: gauges, slumps"):
        read_polygons(f"{two_layer_gpkg}|layername=lakes")


def test_algorithm_refuses_output_over_input_before_work(qgis_processing, provider, two_layer_gpkg, tmp_path):
    import processing

    before = open(two_layer_gpkg, "rb").read()
    source = f"{two_layer_gpkg}|layername=slumps"
    with pytest.raises(QgsProcessingException):
        processing.run("rtsfusion:changedetect", {"BEFORE": source, "AFTER": source, "OUTPUT": two_layer_gpkg})
    assert open(two_layer_gpkg, "rb").read() == before
    out = tmp_path / "new" / "changes.gpkg"
    result = processing.run("rtsfusion:changedetect", {"BEFORE": source, "AFTER": source, "OUTPUT": str(out)})
    assert result["N_STABLE"] == 1 and out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["changes.gpkg"]


def test_minimum_area_is_shown_in_whole_square_metres(provider):
    """The dialog shows '1000', not '1000.000000' (seen in the real QGIS window)."""
    for alg_id in ("rtsfusion:mapslumps", "rtsfusion:mapregion"):
        param = provider.algorithm(alg_id.split(":")[1]).parameterDefinition("MIN_AREA")
        assert param.metadata()["widget_wrapper"]["decimals"] == 0
        assert param.defaultValue() == 1000.0
