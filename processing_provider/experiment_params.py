"""What the experiments share: architecture and band-set choices, and the training-budget parameters.

Kept free of torch, so the provider lists these algorithms without the deep-learning packages.
"""

from __future__ import annotations

from qgis.core import QgsProcessingParameterDefinition, QgsProcessingParameterEnum, QgsProcessingParameterNumber

from ..core.features import PRESETS
from ..models.registry import ARCHITECTURES
from .params import DEVICES

# The registry's order: the study's twelve, then FusionSA-SegFormer and its dual-stream variant.
ARCHITECTURE_IDS = tuple(ARCHITECTURES)
BAND_SETS = ("rgb", "paper", "extended", "all bands of the stack", "optical_dem", "optical")  # append only
SIZES = ("tiny", "standard")
PROTOCOLS = (
    "Experiment defaults (AdamW 1e-3, OneCycle to 3e-3, pooled validation F1, our augmentation and scaling)",
    "The study's training protocol with the budget above (see help)",
)
# The score columns of the experiment tables (models.study._score_row), each convention named.
SCORE_COLUMNS_HELP = (
    "Columns: precision, recall, f1, iou pooled over all pixels; *_per_chip averaged over chips (a chip with no "
    "slump and no prediction counts 1); overall_accuracy pooled; f1_study and macro_f1_study in the study's "
    "per-chip convention (such a chip counts 0; macro = mean of slump and background F1, the paper's F1 column); "
    "object_f1_chips the study's object F1 (slump pixels joined by 8-connectivity into objects cut at the chip "
    "edges, a prediction touching a true slump a hit, counts summed over chips)."
)
# What the study's protocol sets here; the budget, architecture, seed and the blocked split stay the experiment's.
STUDY_FIELDS = ("lr", "max_lr", "weight_decay", "warmup_fraction", "anneal", "div_factor", "select_by", "dice",
                "crop_ratio", "rot90_p", "normalization", "patience")  # fmt: skip


class ExperimentParams:
    """Names of the parameters the experiment algorithms share (stable: models and scripts use them)."""

    SIZE = "SIZE"
    EPOCHS = "EPOCHS"
    TILE_SIZE = "TILE_SIZE"
    CHIPS_PER_EPOCH = "CHIPS_PER_EPOCH"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    PROTOCOL = "PROTOCOL"
    BLOCK_SIZE = "BLOCK_SIZE"
    ARCHITECTURE = "ARCHITECTURE"
    BAND_SET = "BAND_SET"
    SEED = "SEED"


def band_set(name: str) -> tuple[str, ...] | None:
    """Bands of a named set; None for all bands of the stack."""
    return None if name.startswith("all") else PRESETS[name]


def add_budget_parameters(alg) -> None:
    """Encoder size, epochs, tile size, chips per epoch, batch size, device and (advanced) split block size."""
    alg.addParameter(QgsProcessingParameterEnum(ExperimentParams.SIZE, "Encoder size", list(SIZES), defaultValue=0))
    alg.addParameter(
        QgsProcessingParameterNumber(
            ExperimentParams.EPOCHS, "Epochs", QgsProcessingParameterNumber.Type.Integer, 20, False, 1, 1000
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            ExperimentParams.TILE_SIZE,
            "Tile size (px, multiple of 32)",
            QgsProcessingParameterNumber.Type.Integer,
            64,
            False,
            32,
            1024,
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            ExperimentParams.CHIPS_PER_EPOCH,
            "Chips per epoch",
            QgsProcessingParameterNumber.Type.Integer,
            128,
            False,
            8,
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            ExperimentParams.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Type.Integer, 8, False, 1
        )
    )
    alg.addParameter(QgsProcessingParameterEnum(ExperimentParams.DEVICE, "Device", list(DEVICES), defaultValue=0))
    alg.addParameter(
        QgsProcessingParameterEnum(ExperimentParams.PROTOCOL, "Training protocol", list(PROTOCOLS), defaultValue=0)
    )
    block = QgsProcessingParameterNumber(
        ExperimentParams.BLOCK_SIZE,
        "Block size of the spatially blocked split (px, 0 or empty = automatic)",
        QgsProcessingParameterNumber.Type.Integer,
        0,
        True,
        0,
    )
    block.setFlags(block.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    alg.addParameter(block)


def read_budget(alg, parameters, context) -> dict:
    """TrainConfig settings from the budget parameters (encoder: the size class, "tiny" or "standard").

    With the study's protocol, its learning-rate schedule, optimiser, best-epoch rule, augmentation, Dice and
    input scaling replace the experiment defaults (models.train.study_preset); epochs stay the budget's and the
    split stays blocked, so held-out scores stay unleaked.
    """
    epochs = alg.parameterAsInt(parameters, ExperimentParams.EPOCHS, context)
    study: dict = {}
    if alg.parameterAsEnum(parameters, ExperimentParams.PROTOCOL, context) == 1:
        from ..models.train import study_preset

        preset = study_preset()
        study = {k: getattr(preset, k) for k in STUDY_FIELDS}
    return {
        "encoder": SIZES[alg.parameterAsEnum(parameters, ExperimentParams.SIZE, context)],
        "tile_size": alg.parameterAsInt(parameters, ExperimentParams.TILE_SIZE, context),
        "epochs": epochs,
        "batch_size": alg.parameterAsInt(parameters, ExperimentParams.BATCH_SIZE, context),
        "chips_per_epoch": alg.parameterAsInt(parameters, ExperimentParams.CHIPS_PER_EPOCH, context),
        "lr": 1e-3,
        "max_lr": 3e-3,
        "patience": epochs,
        "device": DEVICES[alg.parameterAsEnum(parameters, ExperimentParams.DEVICE, context)],
        **study,
        "block_size": alg.parameterAsInt(parameters, ExperimentParams.BLOCK_SIZE, context),
    }


def add_training_parameters(alg) -> None:
    """Architecture, band set, the budget and a seed (the transfer experiments)."""
    alg.addParameter(
        QgsProcessingParameterEnum(
            ExperimentParams.ARCHITECTURE, "Architecture", list(ARCHITECTURE_IDS), defaultValue=12
        )
    )
    alg.addParameter(QgsProcessingParameterEnum(ExperimentParams.BAND_SET, "Band set", list(BAND_SETS), defaultValue=1))
    add_budget_parameters(alg)
    alg.addParameter(
        QgsProcessingParameterNumber(
            ExperimentParams.SEED, "Random seed", QgsProcessingParameterNumber.Type.Integer, 0, False, 0
        )
    )


def read_training_parameters(alg, parameters, context):
    """(TrainConfig, bands) from add_training_parameters' parameters."""
    from ..models.registry import encoder_for
    from ..models.train import TrainConfig

    arch = ARCHITECTURE_IDS[alg.parameterAsEnum(parameters, ExperimentParams.ARCHITECTURE, context)]
    budget = read_budget(alg, parameters, context)
    budget["encoder"] = encoder_for(arch, budget["encoder"])
    cfg = TrainConfig(
        architecture=arch, decoder_dim=64, seed=alg.parameterAsInt(parameters, ExperimentParams.SEED, context), **budget
    )
    return cfg, band_set(BAND_SETS[alg.parameterAsEnum(parameters, ExperimentParams.BAND_SET, context)])
