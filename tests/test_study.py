"""Model study and transfer experiments on the sample scene (tiny settings).

The experiment plumbing (runs, folds, rows, reports, algorithms) is tested with a stub fit (`stub_fit`: an
untrained network, everything around the training loop real); the temporal transfer test trains for real.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rts_fusion.core.errors import RtsFusionError  # noqa: E402
from rts_fusion.core.features import PAPER  # noqa: E402
from rts_fusion.core.synthetic import fuse_sample_scene, generate_sample_scene  # noqa: E402
from rts_fusion.models.study import (  # noqa: E402
    StudyRun,
    run_model_study,
    spatial_transfer,
    split_regions,
    study_report,
    temporal_transfer,
)
from rts_fusion.models.train import TrainConfig  # noqa: E402

QUICK = TrainConfig(
    encoder="tiny", decoder_dim=16, tile_size=64, epochs=2, batch_size=8, chips_per_epoch=32, lr=1e-3, max_lr=3e-3,
    patience=2, seed=0, device="cpu",
)  # fmt: skip


@pytest.fixture(scope="module")
def region_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regions")
    scene = generate_sample_scene(str(folder), size=384, seed=16, regions=3)  # slumps in all three regions
    return fuse_sample_scene(scene, PAPER, str(folder / "stack.tif")), scene.slumps, str(folder / "regions.gpkg")


def finite_scores(row):
    return all(0 <= row[k] <= 1 for k in ("precision", "recall", "f1", "iou", "f1_per_chip"))


def test_small_model_study_produces_its_table(training_stack, tmp_path, stub_fit):
    torch.set_num_threads(2)
    stack, slumps = training_stack
    runs = [
        StudyRun("3-layer CNN [paper]", "cnn3", PAPER),
        StudyRun("U-Net ResNet-34 [rgb]", "unet_resnet34", ("RED", "GREEN", "BLUE")),
        StudyRun("FusionSA-SegFormer [paper]", "fusion_sa_segformer", PAPER),
    ]
    seen = []
    res = run_model_study(runs, QUICK, [0], str(tmp_path), stack, slumps, progress=seen.append)
    assert [r["model"] for r in res.rows] == [r.label for r in runs] and not res.canceled
    assert all(finite_scores(r) for r in res.rows)
    assert [r["bands"] for r in res.rows] == [13, 3, 13] and all(r["params"] > 0 for r in res.rows)
    # The study's own conventions beside ours, in every row and in the summary.
    for r in [*res.rows, *res.summary]:
        assert all(0 <= r[k] <= 1 for k in ("f1_study", "macro_f1_study", "overall_accuracy"))
        assert math.isnan(r["object_f1_chips"]) or 0 <= r["object_f1_chips"] <= 1  # the stub keeps no object counts
    assert res.rows[2]["vs_study"] == "as the study"  # FusionSA-SegFormer on 13 bands: random start, as theirs
    assert [s["rank"] for s in res.summary] == [1, 2, 3]
    assert [s["f1"] for s in res.summary] == sorted((s["f1"] for s in res.summary), reverse=True)
    assert seen and max(seen) <= 100 and seen[-1] > 60
    assert len(stub_fit) == 3  # one (stub) fit per run and seed
    html = study_report(str(tmp_path / "study.html"), res, {"epochs": 2})
    assert open(html).read().count("<img") == 2


def test_model_study_cancel_keeps_finished_rows(training_stack, tmp_path, stub_fit):
    stack, slumps = training_stack
    calls = {"n": 0}

    def cancel_after_first_run():
        return len(done) >= 1

    done = []
    runs = [StudyRun("CNN", "cnn3", PAPER), StudyRun("CNN again", "cnn3", PAPER)]
    res = run_model_study(
        runs, QUICK, [0], str(tmp_path), stack, slumps, is_canceled=cancel_after_first_run,
        log=lambda m: done.append(m) if "test F1" in m else None,
    )  # fmt: skip
    del calls
    assert res.canceled and len(res.rows) == 1 and res.rows[0]["model"] == "CNN"


def test_model_study_refuses_unknown_architectures(training_stack, tmp_path):
    with pytest.raises(RtsFusionError, match="Unknown architecture"):
        run_model_study([StudyRun("x", "resnet9000")], QUICK, [0], str(tmp_path), *training_stack)


def test_regions_of_the_sample_differ_and_split(region_scene, tmp_path):
    stack, _, regions = region_scene
    folds = split_regions(regions, "region", str(tmp_path))
    assert [f[0] for f in folds] == ["west", "centre", "east"]
    import rasterio

    with rasterio.open(stack) as ds:
        dem = ds.read(list(ds.descriptions).index("DEM") + 1)
    thirds = np.array_split(dem, 3, axis=1)
    relief = [float(np.std(t - np.mean(t))) for t in thirds]
    assert relief[2] > relief[0]  # the east strip is rougher than the west one


def _slumps_and_water(scene):
    """The scene's slump mask and open-water mask (dark NIR) on its optical grid."""
    import rasterio
    from rts_fusion.core.grid import TargetGrid
    from rts_fusion.core.labels import rasterize_polygons
    from scipy import ndimage

    with rasterio.open(scene.optical) as ds:
        grid = TargetGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height)
        slumps = rasterize_polygons(scene.slumps, grid).astype(bool)
        water = ndimage.binary_opening(ds.read(4) < 300)  # NIR reflectance × 10 000: water below 0.03
    return slumps, water


def test_a_denser_sample_spreads_its_slumps_over_more_chips(tmp_path):
    with pytest.raises(ValueError, match="slump density"):
        generate_sample_scene(str(tmp_path / "zero"), size=64, slump_density=0)
    from scipy import ndimage

    plain = generate_sample_scene(str(tmp_path / "plain"), size=512, seed=42)
    dense = generate_sample_scene(str(tmp_path / "dense"), size=512, seed=42, slump_density=3)
    assert (plain.n_slumps, dense.n_slumps) == (14, 42)
    counts = {}
    for name, scene in (("plain", plain), ("dense", dense)):
        slumps, water = _slumps_and_water(scene)
        tiles = int(slumps.reshape(8, 64, 8, 64).any(axis=(1, 3)).sum())  # chips of 64 px holding a slump
        lakes = ndimage.label(water)[1]
        labels, n = ndimage.label(slumps)
        metres = ndimage.distance_transform_edt(~water) * 10  # to the nearest open water in the image
        near = np.asarray(ndimage.minimum(metres, labels, np.arange(1, n + 1)))  # each slump's nearest edge
        # Beside the lakes, never in them: every site lies within 400 m of water, which for a few is a lake just
        # outside the image.
        assert (near < 400).mean() >= 0.9 and not (slumps & water).any()
        counts[name] = tiles, lakes
    # Small lakes all over the dense scene: its slumps fill about twice as many chips, not the same shores.
    assert counts["dense"][1] >= 3 * counts["plain"][1]
    assert counts["dense"][0] >= 1.8 * counts["plain"][0]


def test_spatial_transfer_leaves_each_region_out(region_scene, tmp_path, stub_fit):
    stack, slumps, regions = region_scene
    res = spatial_transfer(stack, slumps, regions, "region", QUICK, bands=PAPER, workdir=str(tmp_path))
    assert [r["test"] for r in res.rows[:3]] == ["west", "centre", "east"] and res.rows[3]["fold"] == "mean over folds"
    assert all(finite_scores(r) for r in res.rows)
    assert math.isclose(res.rows[3]["f1"], np.mean([r["f1"] for r in res.rows[:3]]), abs_tol=1e-3)
    assert len(stub_fit) == 3  # one fit per fold
    assert all(0 <= r["object_f1_chips"] <= 1 for r in res.rows)  # the study's object count, per held-out region
    assert all(0 <= r["overall_accuracy"] <= 1 for r in res.rows)  # OA next to F1, as the study reports transfer


def test_other_years_are_scored_on_test_chips_only(region_scene):
    """Held-out locations: test chips only, never a pixel of a training or a validation chip (those pick the epoch)."""
    from rts_fusion.models.data import auto_blocked_split, chip_cover, load_scene
    from rts_fusion.models.study import held_out_locations

    stack, slumps, _ = region_scene
    mask, n = held_out_locations(stack, slumps, QUICK, PAPER)
    split, _ = auto_blocked_split(load_scene(stack, slumps, PAPER), 64, 0, (QUICK.val_fraction, QUICK.test_fraction), 0)
    cover = {name: chip_cover(chips, 64, mask.shape) for name, chips in split.chips.items()}
    assert n == len(split.chips["test"]) > 0 and mask.any()
    assert not (mask & (cover["train"] | cover["val"])).any() and not (mask & ~cover["test"]).any()


@pytest.mark.learning
def test_temporal_transfer_between_years(tmp_path):
    years = {}
    for year in (2019, 2024):
        scene = generate_sample_scene(str(tmp_path / str(year)), size=256, seed=4, year=year)
        years[year] = (
            fuse_sample_scene(scene, PAPER, str(tmp_path / f"stack_{year}.tif")),
            scene.slumps,
            scene.slump_fraction,
        )
    assert years[2019][2] < years[2024][2]  # the slumps grew
    from dataclasses import replace

    cfg = replace(QUICK, block_size=64)  # small blocks: a 256 px scene still has validation and test blocks
    res = temporal_transfer(
        years[2019][:2], [("2024", *years[2024][:2])], cfg, bands=PAPER, workdir=str(tmp_path), train_label="2019"
    )
    assert [r["fold"] for r in res.rows] == ["2019 (held-out test split)", "2019 → 2024 (held-out locations)"]
    assert all(finite_scores(r) for r in res.rows) and res.rows[1]["chips"] > 0
    assert all(0 <= r["overall_accuracy"] <= 1 for r in res.rows)
    # 2024 is scored only where 2019's training never looked: a fraction of the scene, no training chip.
    from rts_fusion.models.study import held_out_locations

    mask, n = held_out_locations(*years[2019][:2], cfg, PAPER)
    assert 0 < mask.mean() < 0.6 and n > 0


@pytest.fixture(scope="module")
def chip_manifest(tmp_path_factory):
    """The study's chip layout over two years and two regions (west / east halves) of a sample scene."""
    import csv

    import rasterio
    from rts_fusion.models.data import load_scene

    tmp_path = tmp_path_factory.mktemp("chips")
    chip, factors, rows = 64, ["DEM", "LST", "NDVI"], []
    for year in (2019, 2024):
        scene = generate_sample_scene(str(tmp_path / str(year)), size=384, seed=6, year=year)
        data = load_scene(fuse_sample_scene(scene, PAPER, str(tmp_path / f"stack_{year}.tif")), scene.slumps, PAPER)
        for r in range(0, 384, chip):
            for c in range(0, 384, chip):
                stem = f"r{r}_c{c}"  # a place: the same stem in both years, as in the study's manifests
                img = data.image[:, r : r + chip, c : c + chip]
                row = {"year": year, "region": "west" if c < 192 else "east", "stem": stem}
                mask = data.label[r : r + chip, c : c + chip][None]
                layers = [("optical_path", img[[0, 1, 2]]), ("mask_path", mask)]
                for name, arr in layers + [(f, img[PAPER.index(f)][None]) for f in factors]:
                    path = tmp_path / f"{name}_{year}_{stem}.tif"
                    with rasterio.open(path, "w", driver="GTiff", width=chip, height=chip, count=arr.shape[0],
                                       dtype=arr.dtype.name) as dst:  # fmt: skip
                        dst.write(arr)
                    row[name] = path.name
                rows.append(row)
    manifest = tmp_path / "chips.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(manifest)


def test_manifest_transfer_by_region_and_by_year(chip_manifest, tmp_path, stub_fit):
    """A manifest with region and year columns drives both transfer experiments."""
    from rts_fusion.models.study import manifest_transfer

    spatial = manifest_transfer(chip_manifest, "region", QUICK, workdir=str(tmp_path / "s"))
    assert [r["fold"] for r in spatial.rows] == ["held out: west", "held out: east", "mean over folds"]
    assert [r["chips"] for r in spatial.rows[:2]] == [36, 36] and all(finite_scores(r) for r in spatial.rows)
    temporal = manifest_transfer(chip_manifest, "year", QUICK, train_value="2019", workdir=str(tmp_path / "t"))
    # Scored only at the 20 % of shared places held out per region (4 of 18 in each half), as the study did.
    assert [r["fold"] for r in temporal.rows] == ["2019 → 2024 (held-out locations)"] and temporal.rows[0]["chips"] == 8
    keys = ("overall_accuracy", "f1_study", "macro_f1_study", "object_f1_chips")
    assert all(0 <= r[k] <= 1 for r in spatial.rows + temporal.rows for k in keys)
    with pytest.raises(RtsFusionError, match="no column 'site'"):
        manifest_transfer(chip_manifest, "site", QUICK)


def test_transfer_algorithms_take_a_manifest(provider, chip_manifest, stub_fit):
    import processing
    from qgis.core import QgsProject, QgsVectorLayer

    def rows(out):
        layer = out if isinstance(out, QgsVectorLayer) else QgsProject.instance().mapLayer(out)
        return [f.attributes() for f in layer.getFeatures()]

    quick = {"EPOCHS": 1, "CHIPS_PER_EPOCH": 16, "DEVICE": 1, "OUTPUT": "memory:"}
    spatial = processing.run("rtsfusion:spatialtransfer", {"MANIFEST": chip_manifest, **quick})
    assert [r[0] for r in rows(spatial["OUTPUT"])] == ["held out: west", "held out: east", "mean over folds"]
    temporal = processing.run("rtsfusion:temporaltransfer", {"MANIFEST": chip_manifest, "TRAIN_VALUE": "2019", **quick})
    assert [r[0] for r in rows(temporal["OUTPUT"])] == ["2019 → 2024 (held-out locations)"]
    assert 0 <= temporal["MEAN_TRANSFER_F1"] <= 1


def test_a_model_that_cannot_take_the_bands_is_explained(training_stack, tmp_path):
    runs = [StudyRun("DS on RGB", "fusion_sa_segformer_ds", ("RED", "GREEN", "BLUE"))]
    with pytest.raises(RtsFusionError, match="needs both optical and auxiliary bands"):
        run_model_study(runs, QUICK, [0], str(tmp_path), *training_stack)


def test_transfer_refuses_regions_and_inventories_off_the_stack(training_stack, tmp_path):
    """Checked before any training: a region or an inventory that misses the stack is named."""
    from rts_fusion.core.vector import PolygonRecord, layer_crs_wkt, write_polygons

    stack, slumps = training_stack
    import rasterio

    with rasterio.open(stack) as ds:
        x0, y0, x1, y1 = ds.bounds
    wkt = layer_crs_wkt(slumps)

    def square(x, y, side=500.0):
        return [(x, y), (x + side, y), (x + side, y - side), (x, y - side), (x, y)]

    regions = str(tmp_path / "regions.gpkg")
    records = [PolygonRecord(square(x0, y1), {"name": "on"}), PolygonRecord(square(x1 + 50_000, y1), {"name": "far"})]
    write_polygons(regions, "regions", wkt, records)
    with pytest.raises(RtsFusionError, match="region far of the regions layer.*does not overlap.*the stack"):
        spatial_transfer(stack, slumps, regions, "name", QUICK, workdir=str(tmp_path / "w"))
    far = str(tmp_path / "far.gpkg")
    write_polygons(far, "far", wkt, [PolygonRecord(square(x1 + 50_000, y1), {"id": 1})])
    with pytest.raises(
        RtsFusionError, match="The 2024 inventory .far.gpkg. does not overlap the valid pixels of the 2024 stack"
    ):
        temporal_transfer((stack, slumps), [("2024", stack, far)], QUICK, workdir=str(tmp_path / "t"))
