"""Algorithm "Import the authors' checkpoint": a .pth from SA-SegFormer-RTS-open → an RTS Fusion model package."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.errors import RtsFusionError
from .common import RtsAlgorithm, require_deep_learning

# (label, RGB divisor); 0 = the three RGB bands min–max scaled together per chip.
RGB_SCALINGS = (
    ("Per-chip min–max of the three RGB bands together (the authors' loader on a non-8-bit image, e.g. a "
     "reflectance stack from 'Align and fuse')", 0.0),
    ("Divide by 255 (the RGB bands hold 8-bit values, as the study's optical chips)", 255.0),
    ("Use as they are (the RGB bands already hold 0–1 values)", 1.0),
)  # fmt: skip


class ImportCheckpointAlgorithm(RtsAlgorithm):
    """Convert a checkpoint saved by the authors' training scripts into a model package."""

    GROUP = "Deep learning"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    RGB_SCALING = "RGB_SCALING"
    PIXEL_SIZE = "PIXEL_SIZE"
    THRESHOLD = "THRESHOLD"
    HEADS = "HEADS"
    ATTN_DOWNSAMPLE = "ATTN_DOWNSAMPLE"
    OVERLAP = "OVERLAP"
    OUTPUT = "OUTPUT"
    CARD = "CARD"

    def name(self) -> str:
        return "importcheckpoint"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return "Import the authors' checkpoint"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return (
            "Turns a checkpoint saved by the study's own training code (GitHub FX794726198/SA-SegFormer-RTS-open: "
            "best.pth / last.pth, <i>torch.save(model.state_dict())</i>) into a model package that 'Detect thaw "
            "slumps' and the other algorithms use.<br><br>"
            "Recognised from the weights: FusionSA-SegFormer (13 bands, decoder self-attention), SA-SegFormer, "
            "CA-SegFormer (decoder cross-attention) and the study's SegFormer baseline (the same decoder without "
            "attention), on MiT-b0…b5. The encoder's unused stage 4 is dropped. Other baselines (ConvNeXt, U-Net, "
            "…) are refused. The file is read with <i>weights_only</i>: only tensors are loaded; a file that "
            "would need Python objects unpickled is refused. The checkpoint is only read, never changed.<br>"
            "The card records: the bands in the network's order (13 → RED, GREEN, BLUE, DEM, EVI, FTI, LST, "
            "NBR, NDMI, NDVI, TCB, TCG, TCW; 3 → RED, GREEN, BLUE, as the study's RGB baselines; other counts "
            "need <b>Band names</b>), the study's input scaling (each factor band min–max scaled to 0–1 per chip, "
            "RGB scaled as chosen, then ImageNet mean/std on RGB — applied tile by tile at inference, as the "
            "study did chip by chip), tile 256 px and threshold 0.4.<br>"
            "<b>RGB scaling</b>: the study's RGB chips were 8-bit images divided by 255. A fused stack from "
            "'Align and fuse' holds reflectance instead; the authors' loader scales such an image by its "
            "per-chip minimum and maximum, which is the default here. Neither matches their 8-bit chips exactly "
            "unless your RGB bands were made the same way, so check the model on labelled ground first.<br>"
            "<b>Pixel size</b>: the study's chips do not record one; 0 leaves it unchecked at inference.<br>"
            "<b>Attention heads / downsampling</b> are not stored in the weights; the study used 4 and 8."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT, "Checkpoint of the authors' code (.pth)", fileFilter="PyTorch weights (*.pth *.pt)"
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.BANDS, "Band names in the network's input order (comma-separated; empty: the study's)",
                optional=True,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterEnum(self.RGB_SCALING, "RGB scaling", [r[0] for r in RGB_SCALINGS], defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.PIXEL_SIZE, "Pixel size of the training chips (0: not recorded)",
                QgsProcessingParameterNumber.Type.Double, 0.0, False, 0.0,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, "Decision threshold", QgsProcessingParameterNumber.Type.Double, 0.4, False, 0.01, 0.99
            )
        )
        for p in (
            QgsProcessingParameterNumber(
                self.HEADS, "Decoder attention heads", QgsProcessingParameterNumber.Type.Integer, 4, False, 1, 64
            ),
            QgsProcessingParameterNumber(
                self.ATTN_DOWNSAMPLE, "Decoder attention downsampling", QgsProcessingParameterNumber.Type.Integer, 8,
                False, 1, 64,
            ),
            QgsProcessingParameterNumber(
                self.OVERLAP, "Inference tile overlap (px)", QgsProcessingParameterNumber.Type.Integer, 64, False,
                0, 192,
            ),
        ):  # fmt: skip
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, "Model package", "Model package (*.safetensors)")
        )
        self.addOutput(QgsProcessingOutputString(self.CARD, "Model card"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        require_deep_learning()
        from ..models.card import format_card
        from ..models.checkpoint import import_study_checkpoint

        path = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if os.path.abspath(path) == os.path.abspath(out):
            raise QgsProcessingException("The model package must not overwrite the checkpoint; choose another file.")
        text = self.parameterAsString(parameters, self.BANDS, context).strip()
        bands = tuple(b.strip().upper() for b in text.split(",") if b.strip()) if text else None
        try:
            card = import_study_checkpoint(
                path,
                out,
                bands=bands,
                rgb_divisor=RGB_SCALINGS[self.parameterAsEnum(parameters, self.RGB_SCALING, context)][1],
                pixel_size=self.parameterAsDouble(parameters, self.PIXEL_SIZE, context),
                heads=self.parameterAsInt(parameters, self.HEADS, context),
                attn_downsample=self.parameterAsInt(parameters, self.ATTN_DOWNSAMPLE, context),
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            )
        except RtsFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc
        text = format_card(card)
        feedback.pushInfo(text)
        return {self.OUTPUT: out, self.CARD: text}
