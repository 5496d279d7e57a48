"""A small painted bar chart for band importance (QPainter only: no plotting library in the GUI)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

GROUP_COLOURS = {"optical": QColor("#2b83ba"), "auxiliary": QColor("#d7191c")}
GROUP_LABELS = {"optical": "Optical / spectral", "auxiliary": "Thermal / terrain"}
OTHER_COLOUR = QColor("#7b7b7b")
SIN45 = math.sqrt(0.5)


def nice_ticks(lo: float, hi: float, target: int = 5) -> tuple[list[float], int]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10ⁿ) covering [lo, hi], and the decimals to print them."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, target - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / mag, 6) == 2.5 else 0)
    return [round(i * step, decimals + 2) for i in range(first, last + 1)], decimals


@dataclass(frozen=True)
class Bar:
    """One bar: label, value, optional error (± std) and band group (sets the colour)."""

    label: str
    value: float
    error: float = 0.0
    group: str = ""


class BarChartWidget(QWidget):
    """Vertical bars, most important first, coloured by band group (with a legend), ± std whiskers, round ticks."""

    MARGIN_RIGHT, TITLE_HEIGHT, LEGEND_HEIGHT = 10, 20, 18

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._bars: list[Bar] = []
        self._title = ""
        self._ylabel = ""
        self.setMinimumSize(240, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API name
        return QSize(360, 280)

    def set_bars(self, bars: list[Bar], title: str = "", ylabel: str = "") -> None:
        """Show these bars (in the given order)."""
        self._bars = list(bars)
        self._title, self._ylabel = title, ylabel
        self.update()

    def bars(self) -> list[Bar]:
        """The bars shown."""
        return list(self._bars)

    def _small_font(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.9))
        return small

    def ticks(self) -> tuple[list[float], int]:
        """The y-axis ticks (round numbers spanning every bar and whisker) and their decimals."""
        lo = min([0.0] + [b.value - b.error for b in self._bars])
        hi = max([0.0] + [b.value + b.error for b in self._bars])
        return nice_ticks(lo, hi)

    def _range(self) -> tuple[float, float]:
        ticks, _ = self.ticks()
        return ticks[0], ticks[-1]

    def tick_labels(self) -> list[str]:
        """The tick texts as drawn."""
        ticks, decimals = self.ticks()
        return [f"{v:.{decimals}f}" for v in ticks]

    def margins(self) -> tuple[float, float]:
        """Left and bottom margins wide enough for every tick label and every (45°) bar label, untruncated."""
        fm = QFontMetrics(self._small_font())
        left = max(fm.horizontalAdvance(t) for t in self.tick_labels()) + 10 + (fm.height() if self._ylabel else 0)
        widest = max((fm.horizontalAdvance(b.label) for b in self._bars), default=0)
        bottom = widest * SIN45 + fm.height() + 8
        if self._bars:  # the first label runs down-left from its bar: keep it inside the widget
            slot = max(1.0, (self.width() - left - self.MARGIN_RIGHT) / len(self._bars))
            first = fm.horizontalAdvance(self._bars[0].label) * SIN45 + fm.height() * SIN45
            left = max(left, first - slot / 2 + 2)
        return float(left), float(min(bottom, self.height() * 0.45))

    def plot_rect(self) -> QRectF:
        """The plotting area inside the axes."""
        left, bottom = self.margins()
        top = self.TITLE_HEIGHT + (self.LEGEND_HEIGHT if self.legend_items() else 0) + 6
        return QRectF(
            left, top, max(1.0, self.width() - left - self.MARGIN_RIGHT), max(1.0, self.height() - top - bottom)
        )

    def value_to_y(self, value: float) -> float:
        """Widget y of a value on the axis."""
        lo, hi = self._range()
        area = self.plot_rect()
        return area.bottom() - (value - lo) / (hi - lo) * area.height()

    def bar_rects(self) -> list[QRectF]:
        """Each bar's rectangle in widget coordinates (what paintEvent fills)."""
        if not self._bars:
            return []
        area = self.plot_rect()
        slot = area.width() / len(self._bars)
        zero = self.value_to_y(0.0)
        rects = []
        for i, bar in enumerate(self._bars):
            top = self.value_to_y(bar.value)
            x = area.left() + i * slot + 0.15 * slot
            rects.append(QRectF(x, min(top, zero), 0.7 * slot, abs(zero - top)))
        return rects

    def legend_items(self) -> list[tuple[str, QColor]]:
        """(label, colour) of each band group shown, in a fixed order."""
        groups = {b.group for b in self._bars}
        return [(GROUP_LABELS[g], GROUP_COLOURS[g]) for g in GROUP_COLOURS if g in groups]

    def legend_rects(self) -> list[QRectF]:
        """The colour swatch of each legend item."""
        fm = QFontMetrics(self._small_font())
        x, y = self.plot_rect().left(), float(self.TITLE_HEIGHT + 3)
        rects = []
        for label, _colour in self.legend_items():
            rects.append(QRectF(x, y + 2, 12, 12))
            x += 18 + fm.horizontalAdvance(label) + 14
        return rects

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.fillRect(self.rect(), self.palette().base())
        text_colour = self.palette().text().color()
        area = self.plot_rect()
        small = self._small_font()
        fm = QFontMetrics(small)
        p.setFont(small)
        centre = Qt.AlignmentFlag.AlignCenter
        if self._title:
            p.setPen(text_colour)
            p.drawText(QRectF(0, 2, self.width(), self.TITLE_HEIGHT - 2), centre, self._title)
        if not self._bars:
            p.setPen(text_colour)
            p.drawText(area, centre, "No importance values yet")
            p.end()
            return
        for (label, colour), swatch in zip(self.legend_items(), self.legend_rects()):
            p.fillRect(swatch, colour)
            p.setPen(text_colour)
            p.drawText(
                QRectF(swatch.right() + 6, swatch.top() - 2, fm.horizontalAdvance(label) + 4, swatch.height() + 4),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        # Axes, round ticks and the zero line.
        p.setPen(QPen(text_colour, 1))
        p.drawLine(int(area.left()), int(area.top()), int(area.left()), int(area.bottom()))
        ticks, _ = self.ticks()
        for v, text in zip(ticks, self.tick_labels()):
            y = self.value_to_y(v)
            p.drawLine(int(area.left()) - 4, int(y), int(area.left()), int(y))
            p.drawText(
                QRectF(0, y - 8, area.left() - 6, 16), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text
            )
        zero = self.value_to_y(0.0)
        p.drawLine(int(area.left()), int(zero), int(area.right()), int(zero))
        for bar, rect in zip(self._bars, self.bar_rects()):
            colour = GROUP_COLOURS.get(bar.group, OTHER_COLOUR)
            p.fillRect(rect, colour)
            if bar.error > 0:
                cx = rect.center().x()
                p.setPen(QPen(text_colour, 1))
                y0, y1 = self.value_to_y(bar.value - bar.error), self.value_to_y(bar.value + bar.error)
                p.drawLine(int(cx), int(y0), int(cx), int(y1))
            # The label ends under its bar and runs down-left at 45°, at full length.
            width = fm.horizontalAdvance(bar.label) + 4
            p.save()
            p.setPen(text_colour)
            p.translate(rect.center().x(), area.bottom() + 4)
            p.rotate(-45)
            p.drawText(
                QRectF(-width, -fm.height() / 2, width, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                bar.label,
            )
            p.restore()
        if self._ylabel:
            p.save()
            p.setPen(text_colour)
            p.translate(fm.height() / 2 + 1, area.center().y())
            p.rotate(-90)
            p.drawText(QRectF(-area.height() / 2, -fm.height() / 2, area.height(), fm.height()), centre, self._ylabel)
            p.restore()
        p.end()
