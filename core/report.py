"""Small HTML reports with PNG charts (matplotlib's Agg backend, which QGIS ships), QGIS-free."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

from .outputs import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def line_chart(path: str, x: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str) -> str:
    """Write a line chart PNG of several series over x; returns the path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    for name, ys in series.items():
        ax.plot(list(x), list(ys), marker="o", markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, "chart") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def bar_chart(
    path: str,
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    ylabel: str,
    errors: Sequence[float] | None = None,
) -> str:
    """Write a bar chart PNG (optionally with error bars); returns the path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(labels) + 2), 3.4), dpi=100)
    ax.bar(
        range(len(labels)), list(values), yerr=list(errors) if errors is not None else None, color="#8a5a2b", capsize=3
    )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(list(labels), rotation=45, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_output(path, "chart") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def table(rows: Sequence[dict], floats: str = "{:.3f}") -> str:
    """An HTML table of dict rows (keys of the first row are the columns)."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(rows[0])

    def cell(v: object) -> str:
        if v is None:
            return "–"
        return floats.format(v) if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(path: str, title: str, sections: Sequence[tuple[str, str]]) -> str:
    """Write an HTML page of (heading, html body) sections; image paths should be relative to it."""
    css = (
        "body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        "img{max-width:100%;margin:0.5em 0}"
    )
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    with atomic_output(path, "HTML report") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path


def assets_folder(html_path: str) -> str:
    """The folder beside an HTML report for its charts ("report_files" for "report.html"), created."""
    folder = os.path.splitext(html_path)[0] + "_files"
    os.makedirs(folder, exist_ok=True)
    return folder


def image(path: str, relative_to: str) -> str:
    """An <img> tag for a PNG, with its path relative to the HTML file's folder."""
    rel = os.path.relpath(path, os.path.dirname(os.path.abspath(relative_to)))
    return f"<img src='{html.escape(rel)}' alt='{html.escape(os.path.basename(path))}'>"
