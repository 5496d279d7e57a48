"""Parameters shared by the transfer experiments: architecture, bands and training budget."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

from .model_study import ARCHITECTURE_IDS, BAND_SETS, SIZES, band_set
from .train import DEVICES


def add_training_parameters(alg) -> None:
    """Architecture, band set, encoder size, epochs, tile, chips, batch, seed and device."""
    alg.addParameter(
        QgsProcessingParameterEnum("ARCHITECTURE", "Architecture", list(ARCHITECTURE_IDS), defaultValue=12)
    )
    alg.addParameter(QgsProcessingParameterEnum("BAND_SET", "Band set", list(BAND_SETS), defaultValue=1))
    alg.addParameter(QgsProcessingParameterEnum("SIZE", "Encoder size", list(SIZES), defaultValue=0))
    alg.addParameter(
        QgsProcessingParameterNumber("EPOCHS", "Epochs", QgsProcessingParameterNumber.Integer, 20, False, 1, 1000)
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            "TILE_SIZE", "Tile size (px, multiple of 32)", QgsProcessingParameterNumber.Integer, 64, False, 32, 1024
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            "CHIPS_PER_EPOCH", "Chips per epoch", QgsProcessingParameterNumber.Integer, 128, False, 8
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", QgsProcessingParameterNumber.Integer, 8, False, 1)
    )
    alg.addParameter(
        QgsProcessingParameterNumber("SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, False, 0)
    )
    alg.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", list(DEVICES), defaultValue=0))


def read_training_parameters(alg, parameters, context):
    """(TrainConfig, bands) from the shared parameters."""
    from ..models.registry import encoder_for
    from ..models.train import TrainConfig

    arch = ARCHITECTURE_IDS[alg.parameterAsEnum(parameters, "ARCHITECTURE", context)]
    epochs = alg.parameterAsInt(parameters, "EPOCHS", context)
    cfg = TrainConfig(
        architecture=arch,
        encoder=encoder_for(arch, SIZES[alg.parameterAsEnum(parameters, "SIZE", context)]),
        decoder_dim=64,
        tile_size=alg.parameterAsInt(parameters, "TILE_SIZE", context),
        epochs=epochs,
        batch_size=alg.parameterAsInt(parameters, "BATCH_SIZE", context),
        chips_per_epoch=alg.parameterAsInt(parameters, "CHIPS_PER_EPOCH", context),
        lr=1e-3,
        max_lr=3e-3,
        patience=epochs,
        seed=alg.parameterAsInt(parameters, "SEED", context),
        device=DEVICES[alg.parameterAsEnum(parameters, "DEVICE", context)],
    )
    return cfg, band_set(BAND_SETS[alg.parameterAsEnum(parameters, "BAND_SET", context)])
