"""A small painted bar chart for band importance (QPainter only: no plotting library in the GUI)."""

from __future__ import annotations

from dataclasses import dataclass

from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

GROUP_COLOURS = {"optical": QColor("#2b83ba"), "auxiliary": QColor("#d7191c")}
OTHER_COLOUR = QColor("#7b7b7b")


@dataclass(frozen=True)
class Bar:
    """One bar: label, value, optional error (± std) and band group (sets the colour)."""

    label: str
    value: float
    error: float = 0.0
    group: str = ""


class BarChartWidget(QWidget):
    """Vertical bars, most important first, coloured by band group, with ± std whiskers and a zero line."""

    MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 60, 10, 24, 64

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._bars: list[Bar] = []
        self._title = ""
        self._ylabel = ""
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API name
        return QSize(360, 240)

    def set_bars(self, bars: list[Bar], title: str = "", ylabel: str = "") -> None:
        """Show these bars (in the given order)."""
        self._bars = list(bars)
        self._title, self._ylabel = title, ylabel
        self.update()

    def bars(self) -> list[Bar]:
        """The bars shown."""
        return list(self._bars)

    def _range(self) -> tuple[float, float]:
        lo = min([0.0] + [b.value - b.error for b in self._bars])
        hi = max([0.0] + [b.value + b.error for b in self._bars])
        if hi - lo <= 0:
            hi = lo + 1.0
        return lo, hi

    def plot_rect(self) -> QRectF:
        """The plotting area inside the axes."""
        return QRectF(
            self.MARGIN_LEFT,
            self.MARGIN_TOP,
            max(1, self.width() - self.MARGIN_LEFT - self.MARGIN_RIGHT),
            max(1, self.height() - self.MARGIN_TOP - self.MARGIN_BOTTOM),
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

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API name
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, False)
        p.fillRect(self.rect(), self.palette().base())
        text_colour = self.palette().text().color()
        area = self.plot_rect()
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        if self._title:
            p.setPen(text_colour)
            p.drawText(QRectF(0, 2, self.width(), self.MARGIN_TOP - 4), Qt.AlignCenter, self._title)
        if not self._bars:
            p.setPen(text_colour)
            p.drawText(area, Qt.AlignCenter, "No importance values yet")
            p.end()
            return
        lo, hi = self._range()
        # Axes, ticks and the zero line.
        p.setPen(QPen(text_colour, 1))
        p.drawLine(int(area.left()), int(area.top()), int(area.left()), int(area.bottom()))
        for k in range(5):
            v = lo + (hi - lo) * k / 4
            y = self.value_to_y(v)
            p.drawLine(int(area.left()) - 4, int(y), int(area.left()), int(y))
            p.drawText(QRectF(16, y - 8, self.MARGIN_LEFT - 22, 16), Qt.AlignRight | Qt.AlignVCenter, f"{v:.2g}")
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
            p.save()
            p.setPen(text_colour)
            p.translate(rect.center().x(), area.bottom() + 4)
            p.rotate(45)
            p.drawText(QRectF(0, -6, self.MARGIN_BOTTOM * 1.3, 12), Qt.AlignLeft | Qt.AlignVCenter, bar.label)
            p.restore()
        if self._ylabel:
            p.save()
            p.setPen(text_colour)
            p.translate(8, area.center().y())
            p.rotate(-90)
            p.drawText(QRectF(-area.height() / 2, -8, area.height(), 16), Qt.AlignCenter, self._ylabel)
            p.restore()
        p.end()
