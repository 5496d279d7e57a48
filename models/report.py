"""The training report: learning curves and the final scores as an HTML page beside the model package."""

from __future__ import annotations

import html
import os

from ..core import report
from .card import format_card
from .train import TrainResult


def training_report(result: TrainResult, path: str) -> str:
    """Write the HTML report (with two PNG charts next to it) of a training run; returns its path."""
    base = os.path.splitext(path)[0]
    epochs = [row["epoch"] for row in result.history]
    loss_png = report.line_chart(
        f"{base}_loss.png",
        epochs,
        {
            "train loss": [r["train_loss"] for r in result.history],
            "validation loss": [r["val_loss"] for r in result.history],
        },
        "Loss",
        "epoch",
    )
    score_png = report.line_chart(
        f"{base}_scores.png",
        epochs,
        {k: [r[k] for r in result.history] for k in ("precision", "recall", "f1", "iou")},
        "Validation scores (pooled pixels)",
        "epoch",
    )
    metrics = result.card.metrics
    final = [
        {"split": name, **{k: v for k, v in scores.items() if k in ("precision", "recall", "f1", "iou", "kappa")}}
        for name, scores in metrics.splits().items()
    ]
    training = result.card.training
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in training.warnings) if training else ""
    sections = [
        ("Model", "<pre>" + format_card(result.card) + "</pre>"),
        *((("Warnings", f"<ul>{warnings}</ul>"),) if warnings else ()),
        (f"Final scores ({training.selected_by if training else 'kept weights'})", report.table(final)),
        ("Learning curves", report.image(loss_png, path) + report.image(score_png, path)),
        ("Split", "<pre>" + str(result.split_report) + "</pre>"),
        ("Per epoch", report.table(result.history)),
    ]
    return report.write_html(path, f"RTS Fusion training report — {os.path.basename(result.package)}", sections)
