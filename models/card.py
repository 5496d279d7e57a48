"""The model card: everything needed to use a model safely, stored inside the model package."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from ..core.features import needed_inputs
from .config import ModelConfig

CARD_FORMAT = "rtsfusion-model/1"
NORMALIZATIONS = ("standardize", "chip_minmax", "study")


@dataclass(frozen=True)
class Normalization:
    """How raw stack values become network input.

    "standardize" (default): (x − mean) / std per band, with statistics of the training data, so a scene is
    normalised the same way in every tile. "chip_minmax": every band (RGB too) min–max scaled to 0–1 per
    chip, then ImageNet mean/std on the RGB bands. "study": exactly the authors' data.py — each factor band
    min–max scaled to 0–1 per chip (0 where the chip is flat), the RGB bands divided by `rgb_divisor` (255
    for the study's 8-bit optical chips; 1 for reflectance already in 0–1) or, with `rgb_divisor` 0, min–max
    scaled together per chip (their fallback for non-8-bit images), then ImageNet mean/std on RGB. Both
    per-chip schemes change with each chip (tile). Nodata pixels are left out of the minima and maxima and
    become 0 after normalisation.
    """

    method: str = "standardize"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    rgb_divisor: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in NORMALIZATIONS:
            raise ValueError(f"Unknown normalisation {self.method!r}; known: {', '.join(NORMALIZATIONS)}.")
        if self.rgb_divisor < 0:
            raise ValueError(f"The RGB divisor {self.rgb_divisor} is negative.")

    def describe(self) -> str:
        """One line for the card text and help."""
        if self.method == "standardize":
            return "standardize (training-data mean/std per band)"
        if self.method == "chip_minmax":
            return "chip_minmax (every band min–max per chip; ImageNet mean/std on RGB)"
        rgb = f"RGB / {self.rgb_divisor:g}" if self.rgb_divisor > 0 else "RGB min–max per chip (jointly)"
        return f"study (factors min–max per chip; {rgb}, then ImageNet mean/std)"


def _nan_to_none(scores: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in scores.items()}


def _none_to_nan(scores: dict) -> dict:
    return {k: float("nan") if v is None else v for k, v in scores.items()}


@dataclass(frozen=True)
class TrainingInfo:
    """How a model was trained (the card's `training` section).

    Attributes:
        source: the training data (stack + inventory, or manifest).
        split: the split report (method, block size, chips and slump pixels per split, shared pixels).
        epochs_run: epochs trained.
        best_epoch: the epoch whose weights were kept; None when no validation score could choose one (an
            empty validation split), in which case the last epoch's weights were kept.
        selected_by: how the kept weights were chosen ("best validation F1" or "last epoch ...").
        stopped_early: early stopping ended the run.
        canceled: the run was cancelled (the best weights so far were kept).
        seed: random seed.
        device: the torch device trained on.
        train_seconds: training wall time.
        parameters: number of network parameters.
        config: the TrainConfig as a dict.
        warnings: what a user of the model must know about its training (empty splits, ...).
        extra: any further keys of a stored card, kept as they were.

    """

    source: str = ""
    split: dict = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int | None = None
    selected_by: str = "best validation F1"
    stopped_early: bool = False
    canceled: bool = False
    seed: int | None = None
    device: str = ""
    train_seconds: float = 0.0
    parameters: int = 0
    config: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON form (the card format's `training` object)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d["warnings"] = list(self.warnings)
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: dict) -> TrainingInfo:
        """Parse the `training` object of a stored card; unknown keys are kept in `extra`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["warnings"] = tuple(kw.get("warnings", ()))
        return cls(**kw, extra={k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True)
class CardMetrics:
    """A model's scores on its validation and test splits (the card's `metrics` section).

    Each is a dict of score name → value (precision, recall, f1, iou, overall_accuracy, kappa; the *_study ones
    in the authors' per-chip convention, see core.metrics.study_scores); empty when the split was not scored,
    NaN values when it was empty (no slump pixel to score). `test_chips` holds the test chips' confusion counts
    [tp, fp, fn, tn] (for bootstrap intervals); `test_objects` the study's object counts per test chip
    (8-connected, any overlap; core.metrics.object_scores).
    """

    val: dict = field(default_factory=dict)
    val_per_chip: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    test_per_chip: dict = field(default_factory=dict)
    val_study: dict = field(default_factory=dict)
    test_study: dict = field(default_factory=dict)
    test_chips: list = field(default_factory=list)
    test_objects: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON form; NaN scores are written as null (standard JSON)."""
        d = {name: _nan_to_none(scores) for name, scores in self.splits(empty=True).items()}
        return {**self.extra, **d, "test_chips": [list(c) for c in self.test_chips]}

    @classmethod
    def from_dict(cls, d: dict) -> CardMetrics:
        """Parse the `metrics` object of a stored card (null scores become NaN; unknown keys go to `extra`)."""
        known = {f.name for f in fields(cls)} - {"extra", "test_chips"}
        kw: dict = {k: _none_to_nan(v) for k, v in d.items() if k in known and isinstance(v, dict)}
        if isinstance(d.get("test_chips"), list):
            kw["test_chips"] = d["test_chips"]
        return cls(**kw, extra={k: v for k, v in d.items() if k not in kw})

    def splits(self, empty: bool = False) -> dict[str, dict]:
        """The score sets by name (val, val_per_chip, test, test_per_chip, val_study, test_study).

        Args:
            empty: include the empty ones too.

        """
        names = [f.name for f in fields(self) if f.name not in ("extra", "test_chips")]
        return {n: getattr(self, n) for n in names if empty or getattr(self, n)}


@dataclass(frozen=True)
class ModelCard:
    """Metadata of a trained model.

    Attributes:
        config: the architecture and its settings.
        bands: ordered input band names (fused-stack feature names).
        groups: each band's group (optical / auxiliary).
        normalization: input normalisation and its statistics.
        pixel_size: ground pixel size the model was trained at (stack units, usually metres).
        tile_size: inference tile size in pixels.
        overlap: inference tile overlap in pixels.
        classes: class names (index 0 background, 1 thaw slump).
        threshold: decision threshold on the slump probability.
        training: how it was trained (data, split, epochs, seed, timing ...); None for an untrained card.
        metrics: scores on the validation and test splits.

    """

    config: ModelConfig
    bands: tuple[str, ...]
    groups: tuple[str, ...]
    normalization: Normalization
    pixel_size: float
    tile_size: int = 256
    overlap: int = 64
    classes: tuple[str, ...] = ("background", "thaw_slump")
    threshold: float = 0.4
    training: TrainingInfo | None = None
    metrics: CardMetrics = field(default_factory=CardMetrics)

    def to_json(self) -> str:
        """Serialise (stable key order)."""
        d = asdict(self)
        d["config"] = self.config.to_dict()
        d["training"] = self.training.to_dict() if self.training else {}
        d["metrics"] = self.metrics.to_dict()
        d["format"] = CARD_FORMAT
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse and validate a card.

        Raises:
            ValueError: not a card of this format, or inconsistent fields (named).

        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the model card is not valid JSON ({exc})") from exc
        if not isinstance(d, dict) or d.pop("format", None) != CARD_FORMAT:
            raise ValueError(f"the model card is not of format {CARD_FORMAT}")
        training = d.pop("training", None)  # {} for an untrained card
        try:
            card = cls(
                config=ModelConfig.from_dict(d.pop("config")),
                bands=tuple(d.pop("bands")),
                groups=tuple(d.pop("groups")),
                normalization=Normalization(
                    **{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("normalization").items()}
                ),
                classes=tuple(d.pop("classes")),
                training=TrainingInfo.from_dict(training) if training else None,
                metrics=CardMetrics.from_dict(d.pop("metrics", None) or {}),
                **d,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"the model card is missing or has unexpected fields ({exc})") from exc
        card.validate()
        return card

    def validate(self) -> None:
        """Check the card is self-consistent.

        Raises:
            ValueError: naming the inconsistency.

        """
        n = len(self.bands)
        if n == 0 or len(set(self.bands)) != n:
            raise ValueError("the model card's band list is empty or has duplicates")
        if self.config.in_channels != n:
            raise ValueError(f"the card lists {n} bands but the network takes {self.config.in_channels}")
        if len(self.groups) != n:
            raise ValueError("the card's band groups do not match its bands")
        norm = self.normalization
        if norm.method == "standardize" and (len(norm.mean) != n or len(norm.std) != n):
            raise ValueError("the card's normalisation statistics do not match its bands")
        if any(s <= 0 for s in norm.std):
            raise ValueError("the card's normalisation has a non-positive standard deviation")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the card's threshold {self.threshold} is not between 0 and 1")
        if self.tile_size < 16 or not 0 <= self.overlap < self.tile_size:
            raise ValueError(f"the card's tile size {self.tile_size} / overlap {self.overlap} are invalid")

    def needed_inputs(self) -> list[str]:
        """The inputs a user must give for this model's bands, in words (e.g. "a thermal layer", "a DEM")."""
        return needed_inputs(self.bands)

    def missing_bands(self, available: tuple[str, ...] | list[str]) -> list[str]:
        """Bands the model needs that `available` lacks."""
        have = set(available)
        return [b for b in self.bands if b not in have]


def format_card(card: ModelCard) -> str:
    """The card as readable text (for logs, the toolbox and the dock)."""
    cfg = card.config
    from .registry import ARCHITECTURES

    lines = [
        f"Architecture: {ARCHITECTURES.get(cfg.architecture, (cfg.architecture,))[0]} — encoder MiT-{cfg.encoder}, "
        f"decoder width {cfg.decoder_dim}",
        f"Bands ({len(card.bands)}): {', '.join(card.bands)}",
        f"Inputs needed: {'; '.join(card.needed_inputs())}",
        f"Pixel size: {card.pixel_size:g}; tile {card.tile_size} px, overlap {card.overlap} px",
        f"Normalisation: {card.normalization.describe()}; threshold {card.threshold:g}",
    ]
    if card.training:
        t = card.training.to_dict()
        keys = ("source", "epochs_run", "best_epoch", "selected_by", "split", "seed", "device", "train_seconds")
        lines.append("Training: " + ", ".join(f"{k}={t[k]}" for k in keys if k in t))
        lines.extend(f"Training warning: {w}" for w in card.training.warnings)
    for split, scores in card.metrics.splits().items():
        txt = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, int | float))
        lines.append(f"{split.capitalize()} metrics: {txt}")
    return "\n".join(lines)
