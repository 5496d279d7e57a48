"""Algorithm "Train RTS model": fused stack + slump inventory (or a chip manifest) → model package + report."""

from __future__ import annotations

import math

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..core.errors import RtsFusionError
from ..core.features import resolve_features
from ..models.protocol import PEEL_FIGURES, STUDY_DIFFERENCES
from .common import RtsAlgorithm, layer_path, require_deep_learning, run_core
from .params import ENCODERS, TRAIN_ARCHITECTURES, add_device_parameter, device_choice, train_encoder, vector_path

# Appended only: the indexes are stored in scripts and models.
BAND_CHOICES = (
    "all bands of the stack",
    "paper (13 channels)",
    "rgb",
    "custom list",
    "optical_dem (optical + DEM: no thermal, no temperature series)",
    "optical (optical only)",
)
BAND_PRESETS = {1: "paper", 2: "rgb", 4: "optical_dem", 5: "optical"}


PROTOCOLS = (
    "RTS Fusion defaults (the parameters below)",
    "The study's protocol (see help; 400 epochs fused, 200 baselines)",
    "The study's protocol with the number of epochs given below (a shorter trial)",
)


class TrainAlgorithm(RtsAlgorithm):
    """Train a thaw-slump segmentation model and write a self-describing model package."""

    GROUP = "Deep learning"
    STACK = "STACK"
    INVENTORY = "INVENTORY"
    AOI = "AOI"
    MANIFEST = "MANIFEST"
    BANDS = "BANDS"
    CUSTOM_BANDS = "CUSTOM_BANDS"
    ARCHITECTURE = "ARCHITECTURE"
    ENCODER = "ENCODER"
    TILE_SIZE = "TILE_SIZE"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    DEVICE = "DEVICE"
    SEED = "SEED"
    SPLIT = "SPLIT"
    BLOCK_SIZE = "BLOCK_SIZE"
    DECODER_DIM = "DECODER_DIM"
    CHIPS_PER_EPOCH = "CHIPS_PER_EPOCH"
    PATIENCE = "PATIENCE"
    NORMALIZATION = "NORMALIZATION"
    PROTOCOL = "PROTOCOL"
    ENCODER_WEIGHTS = "ENCODER_WEIGHTS"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Train RTS model"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Trains a thaw-slump segmentation network on a fused stack labelled by an inventory of slump polygons "
            "(or on a chip dataset described by a manifest CSV: optical_path, mask_path, one column per factor, "
            "optional split) and writes a model package: one .safetensors file with the weights and the model "
            "card (architecture, bands, normalisation, pixel size, tile size, threshold, training summary, "
            "validation and test scores).<br><br>"
            "<b>Protocol</b>: <i>RTS Fusion defaults</i> use the parameters below; <i>the study's protocol</i> "
            "replaces epochs, batch size, learning rate, split, early stopping and normalisation with the study's "
            "(the authors' training scripts): AdamW 3e-4, weight decay 1e-4; OneCycle to 1e-3 from 1e-3/25 with "
            "10 % warm-up and linear annealing; 400 epochs for FusionSA-SegFormer, 200 for the other models, no "
            "early stopping; batch 8; best epoch by validation F1 averaged over chips as the study counts it (a "
            "chip without slump and prediction scores 0; ties to the lower validation loss); "
            "random resized crop (scale 0.5–1, aspect 0.9–1.1), flips, "
            "quarter turns with p 0.5; loss 0.5·BCE(pos. weight 5) + Dice (zero on batches without slump pixels) + "
            "Focal(α 0.8); random chip split; per-chip min–max input scaling. Architecture, encoder, decoder "
            "width, tile size, seed and device stay yours (and the epochs with the third choice).<br>"
            "Shared by both: FusionSA-SegFormer on MiT-b0, 256 px chips (slump chips drawn twice as often), "
            "threshold 0.4. Where our defaults differ, and why: "
            + "; ".join(f"{name}: {ours}" for name, _study, ours in STUDY_DIFFERENCES)
            + ".<br>"
            "<b>Normalisation</b> (default: per-band standardisation with the training area's mean and std, the "
            "same numbers for every tile of every scene): chosen by a leave-one-region-out transfer experiment "
            "(bench/normalisation_experiment.py, tiny models, short budgets): on the real Peel Plateau clip, "
            f"trained on one half and scored on the other, {PEEL_FIGURES}. On the synthetic three-region sample "
            "it was the other way round (per-chip min–max F1 0.53, training statistics 0.43, per-scene 0.26); the "
            "default follows the real data, where per-chip min–max collapses, and rests on one small real clip. "
            "The study's scaling stays available for the authors' checkpoints and the study preset.<br>"
            "<b>Split</b>: <i>blocked</i> holds out whole spatial blocks so no validation or test chip shares a "
            "pixel with a training chip (block size: automatic picks 2, 1.5 or 1 tile, the first that gives "
            "validation and test chips holding slumps, and says what to change when none does); <i>random</i> "
            "reproduces the study's chip-level split, which leaks (the report gives the shared pixels).<br>"
            "A validation or test split without a slump pixel scores NaN (not 1.0), with a warning in the log and "
            "the model card; without validation slumps the last epoch's weights are kept.<br>"
            "<b>Input bands</b>: all bands of the stack, a preset (<i>paper</i>; <i>rgb</i>; <i>optical_dem</i> "
            "for optical imagery with a DEM and no thermal layer or temperature series; <i>optical</i> for "
            "optical imagery only) or a custom list. The model card records the bands and so the inputs a user "
            "needs to run the model.<br>"
            "Cancelling between batches keeps the best checkpoint so far. A CUDA GPU is used when present "
            "(mixed precision); on a CPU keep the tile size and encoder small."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.STACK, "Fused stack", optional=True))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.INVENTORY,
                "Slump inventory (polygons)",
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI, "Area of interest (optional)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.PROTOCOL, "Training protocol", list(PROTOCOLS), defaultValue=0)
        )
        self.addParameter(QgsProcessingParameterEnum(self.BANDS, "Input bands", list(BAND_CHOICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterString(self.CUSTOM_BANDS, "Custom band list (comma-separated)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.ARCHITECTURE, "Architecture", [a[1] for a in TRAIN_ARCHITECTURES], defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.ENCODER,
                "Encoder size (MiT b0–b5 or tiny; other encoders: tiny, or their standard size for any b*)",
                list(ENCODERS),
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE_SIZE,
                "Tile size (px, multiple of 32)",
                QgsProcessingParameterNumber.Type.Integer,
                256,
                False,
                32,
                2048,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.EPOCHS, "Epochs", QgsProcessingParameterNumber.Type.Integer, 50, False, 1, 10000
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Type.Integer, 8, False, 1, 512
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.LEARNING_RATE,
                "Learning rate (AdamW)",
                QgsProcessingParameterNumber.Type.Double,
                3e-4,
                False,
                1e-7,
                1.0,
            )
        )
        add_device_parameter(self, self.DEVICE)
        self.addParameter(
            QgsProcessingParameterNumber(self.SEED, "Random seed", QgsProcessingParameterNumber.Type.Integer, 20250917)
        )
        advanced = [
            QgsProcessingParameterFile(
                self.MANIFEST, "Chip manifest CSV (instead of stack + inventory)", extension="csv", optional=True
            ),
            QgsProcessingParameterEnum(
                self.SPLIT, "Split", ["blocked (spatial blocks)", "random (study, leaks)"], defaultValue=0
            ),
            QgsProcessingParameterNumber(
                self.BLOCK_SIZE,
                "Block size of the blocked split (px, 0 or empty = automatic)",
                QgsProcessingParameterNumber.Type.Integer,
                0,
                True,
                0,
            ),
            QgsProcessingParameterNumber(
                self.DECODER_DIM, "Decoder width", QgsProcessingParameterNumber.Type.Integer, 256, False, 8, 1024
            ),
            QgsProcessingParameterNumber(
                self.CHIPS_PER_EPOCH,
                "Chips per epoch (0 = automatic)",
                QgsProcessingParameterNumber.Type.Integer,
                0,
                False,
                0,
            ),
            QgsProcessingParameterNumber(
                self.PATIENCE,
                "Early-stopping patience (epochs)",
                QgsProcessingParameterNumber.Type.Integer,
                10,
                False,
                1,
            ),
            QgsProcessingParameterEnum(
                self.NORMALIZATION,
                "Normalisation",
                [
                    "per-band standardisation",
                    "per-chip min–max of every band",
                    "the study's scaling (factors min–max per chip, RGB jointly, ImageNet mean/std)",
                ],
                defaultValue=0,
            ),
            QgsProcessingParameterFile(
                self.ENCODER_WEIGHTS,
                "Encoder weights to start from (.safetensors)",
                extension="safetensors",
                optional=True,
            ),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, "Model package", "Model package (*.safetensors)")
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.REPORT, "Training report", "HTML files (*.html)", optional=True)
        )
        self.addOutput(QgsProcessingOutputNumber("BEST_EPOCH", "Best epoch"))
        self.addOutput(QgsProcessingOutputNumber("VAL_F1", "Validation F1"))
        self.addOutput(QgsProcessingOutputNumber("VAL_IOU", "Validation IoU"))
        self.addOutput(QgsProcessingOutputNumber("TEST_F1", "Test F1"))

    def _bands(self, parameters, context) -> tuple[str, ...] | None:
        choice = self.parameterAsEnum(parameters, self.BANDS, context)
        if choice == 0:
            return None
        if choice == 3:
            return resolve_features(custom=self.parameterAsString(parameters, self.CUSTOM_BANDS, context))
        return resolve_features(BAND_PRESETS[choice])

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.report import training_report
        from ..models.train import TrainConfig, study_preset, train_from_manifest, train_from_stack

        p = parameters
        architecture = TRAIN_ARCHITECTURES[self.parameterAsEnum(p, self.ARCHITECTURE, context)][0]
        encoder = train_encoder(architecture, ENCODERS[self.parameterAsEnum(p, self.ENCODER, context)])
        cfg = TrainConfig(
            architecture=architecture,
            encoder=encoder,
            decoder_dim=self.parameterAsInt(p, self.DECODER_DIM, context),
            tile_size=self.parameterAsInt(p, self.TILE_SIZE, context),
            epochs=self.parameterAsInt(p, self.EPOCHS, context),
            batch_size=self.parameterAsInt(p, self.BATCH_SIZE, context),
            lr=self.parameterAsDouble(p, self.LEARNING_RATE, context),
            chips_per_epoch=self.parameterAsInt(p, self.CHIPS_PER_EPOCH, context),
            split=("blocked", "random")[self.parameterAsEnum(p, self.SPLIT, context)],
            block_size=self.parameterAsInt(p, self.BLOCK_SIZE, context),
            patience=self.parameterAsInt(p, self.PATIENCE, context),
            seed=self.parameterAsInt(p, self.SEED, context),
            device=device_choice(self, p, context, self.DEVICE),
            normalization=("standardize", "chip_minmax", "study")[self.parameterAsEnum(p, self.NORMALIZATION, context)],
            encoder_weights=self.parameterAsFile(p, self.ENCODER_WEIGHTS, context) or None,
        )
        protocol = self.parameterAsEnum(p, self.PROTOCOL, context)
        if protocol:
            keep = ("architecture", "encoder", "decoder_dim", "tile_size", "chips_per_epoch", "seed", "device")
            keep += ("epochs",) if protocol == 2 else ()
            cfg = study_preset(architecture, **{k: getattr(cfg, k) for k in keep}, encoder_weights=cfg.encoder_weights)
            feedback.pushInfo(
                f"The study's protocol: {cfg.epochs} epochs, OneCycle (10 % warm-up, linear), random split."
            )
        output = self.parameterAsFileOutput(p, self.OUTPUT, context)
        if not output.lower().endswith(".safetensors"):
            output += ".safetensors"
        manifest = self.parameterAsFile(p, self.MANIFEST, context)
        log = feedback.pushInfo
        try:
            if manifest:
                result = run_core(feedback, train_from_manifest, manifest, output, cfg, log=log)
            else:
                stack = self.parameterAsRasterLayer(p, self.STACK, context)
                inventory = self.parameterAsVectorLayer(p, self.INVENTORY, context)
                if stack is None or inventory is None:
                    raise QgsProcessingException("Give a fused stack and a slump inventory, or a chip manifest.")
                aoi = self.parameterAsVectorLayer(p, self.AOI, context)
                result = run_core(
                    feedback,
                    train_from_stack,
                    layer_path(stack, "fused stack"),
                    vector_path(inventory, "inventory"),
                    output,
                    cfg,
                    bands=self._bands(p, context),
                    aoi_path=vector_path(aoi, "AOI") if aoi else None,
                    log=log,
                )
        except (RtsFusionError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        if result.canceled:
            feedback.reportError("Training was cancelled; the best checkpoint so far was written.", fatalError=False)
        report_path = self.parameterAsFileOutput(p, self.REPORT, context)
        if report_path:
            training_report(result, report_path)
        for warning in result.card.training.warnings:
            feedback.reportError(f"Warning: {warning}", fatalError=False)
        metrics = result.card.metrics

        def number(value: float | None) -> float | None:
            return None if value is None or math.isnan(value) else value

        return {
            self.OUTPUT: output,
            self.REPORT: report_path or None,
            "BEST_EPOCH": result.card.training.best_epoch,
            "VAL_F1": number(metrics.val.get("f1")),
            "VAL_IOU": number(metrics.val.get("iou")),
            "TEST_F1": number(metrics.test.get("f1")),
        }
