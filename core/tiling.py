"""One tiling engine: the tile lattice, blend weights, a blend accumulator and the tile-prediction loop.

Tiles of `tile` pixels step over a raster with stride `tile - overlap` from the raster's origin, the last one
flush with the raster's end: one global lattice, so a window of the raster gets exactly the tiles (and the
probabilities) that the whole raster gets there. Each tile's probabilities are weighted by a separable sine²
(Hann) window whose outer half is flat on sides that touch the raster edge, so borders are not darkened, and
the weighted sums are divided by the summed weights. A raster smaller than one tile is padded to the tile size
for the prediction and cropped back. Nodata pixels get no weight and come out as NaN.

The engine knows nothing of the network: it calls a `PredictFn` on a batch of normalised tiles and gets
probabilities back, so any backend (PyTorch here, another runtime later) plugs in without touching tiling.
It is numpy only; a prefetching reader and a background writer let disk work overlap the prediction.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import OperationCanceled

PredictFn = Callable[[np.ndarray], np.ndarray]
"""(B, C, t, t) normalised float32 tiles → (B, t, t) probabilities 0–1."""
PrepareFn = Callable[[np.ndarray], np.ndarray]
"""(B, C, h, w) raw tiles with NaN for nodata → normalised float32 tiles of the same shape (NaN-free)."""
EmitFn = Callable[[int, np.ndarray], None]
"""Receives finished rows: (first row within the window, probabilities (n, width) with NaN = nodata)."""


def blend_weights(size: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D sine² window of `size`, flat (1) on the half facing a raster edge; never exactly 0."""
    i = np.arange(size, dtype=np.float64)
    w = np.sin(np.pi * (i + 0.5) / size) ** 2
    half = size // 2
    if at_start:
        w[:half] = 1.0
    if at_end:
        w[half:] = 1.0
    return np.maximum(w, 1e-3).astype(np.float32)


def tile_starts(length: int, tile: int, stride: int, start: int = 0, stop: int | None = None) -> list[int]:
    """Tile offsets of the global lattice of a raster `length` pixels long that meet the span [start, stop).

    The lattice steps by `stride` from the raster's origin, the last tile flush with the raster's end; a raster
    shorter than a tile has one tile at 0. Offsets are in the raster's pixels, so a window of the raster gets
    the same tiles as the whole raster has there.
    """
    stop = length if stop is None else stop
    if length <= tile:
        starts = [0]
    else:
        starts = sorted({*range(0, length - tile, stride), length - tile})
    return [s for s in starts if s < stop and s + min(tile, length) > start]


@dataclass(frozen=True)
class TileLayout:
    """The tiles of a raster (height × width) that cover a window of it (col_off, row_off, width, height)."""

    height: int
    width: int
    tile: int
    overlap: int
    window: tuple[int, int, int, int] = (0, 0, 0, 0)
    rows: tuple[int, ...] = field(init=False)
    cols: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.window == (0, 0, 0, 0):
            object.__setattr__(self, "window", (0, 0, self.width, self.height))
        c0, r0, w, h = self.window
        stride = self.tile - self.overlap
        object.__setattr__(self, "rows", tuple(tile_starts(self.height, self.tile, stride, r0, r0 + h)))
        object.__setattr__(self, "cols", tuple(tile_starts(self.width, self.tile, stride, c0, c0 + w)))

    @property
    def tile_height(self) -> int:
        """Rows of raster data in a tile (the tile size, or the raster's height when it is smaller)."""
        return min(self.tile, self.height)

    @property
    def tile_width(self) -> int:
        """Columns of raster data in a tile (the tile size, or the raster's width when it is smaller)."""
        return min(self.tile, self.width)

    @property
    def count(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)

    @property
    def span(self) -> tuple[int, int]:
        """Raster columns [first, end) read for a row of tiles (the window widened to whole tiles)."""
        return self.cols[0], self.cols[-1] + self.tile_width

    def weights(self, row: int, col: int) -> np.ndarray:
        """Blend weights (tile_height, tile_width) of the tile at raster offset (row, col)."""
        th, tw = self.tile_height, self.tile_width
        wy = blend_weights(th, row == 0, row + th >= self.height)
        wx = blend_weights(tw, col == 0, col + tw >= self.width)
        return wy[:, None] * wx[None, :]

    def window_mask(self, row: int, col: int) -> np.ndarray:
        """Which pixels of the tile at (row, col) lie inside the window (tile_height, tile_width)."""
        c0, r0, w, h = self.window
        ys = np.arange(row, row + self.tile_height)
        xs = np.arange(col, col + self.tile_width)
        return ((ys >= r0) & (ys < r0 + h))[:, None] & ((xs >= c0) & (xs < c0 + w))[None, :]


@dataclass
class TileRow:
    """The tiles of one lattice row worth predicting: their columns, normalised data and valid pixels."""

    row: int
    cols: list[int]
    data: np.ndarray  # (n, C, tile_height, tile_width), normalised
    valid: np.ndarray  # (n, tile_height, tile_width), valid and inside the window
    skipped: int  # tiles of the row without any valid pixel in the window


def cut_row(
    layout: TileLayout, row: int, strip: np.ndarray, prepare: PrepareFn, valid: np.ndarray | None = None
) -> TileRow:
    """Cut a strip (C, tile_height, span width) read at raster row `row` into the tiles worth predicting.

    NaN marks nodata in the strip; `valid` (tile_height, span width), when given, further limits the pixels
    that get weight (the model still sees the data around them). Tiles without a valid pixel inside the window
    are skipped.
    """
    first, _ = layout.span
    tw = layout.tile_width
    strip_valid = np.isfinite(strip).all(axis=0)
    if valid is not None:
        strip_valid &= valid
    cols, tiles, valids = [], [], []
    for c in layout.cols:
        v = strip_valid[:, c - first : c - first + tw] & layout.window_mask(row, c)
        if v.any():
            cols.append(c)
            tiles.append(strip[:, :, c - first : c - first + tw])
            valids.append(v)
    if not cols:
        shape = (0, strip.shape[0], layout.tile_height, tw)
        return TileRow(
            row, [], np.zeros(shape, np.float32), np.zeros((0, layout.tile_height, tw), bool), len(layout.cols)
        )
    return TileRow(row, cols, prepare(np.stack(tiles)), np.stack(valids), len(layout.cols) - len(cols))


class BlendAccumulator:
    """Weighted probability sums over the open rows of a window: add tiles, flush rows no tile will touch again."""

    def __init__(self, layout: TileLayout) -> None:
        """Start empty, at the window's first row."""
        self.col0, self.row0, self.width, self.height = layout.window
        self.top = 0  # first open row, within the window
        self.acc = np.zeros((0, self.width), np.float32)
        self.wsum = np.zeros((0, self.width), np.float32)

    def add(self, row: int, col: int, prob: np.ndarray, weight: np.ndarray) -> None:
        """Add a tile's probabilities (h, w) with their weights at raster offset (row, col), clipped to the window."""
        h, w = prob.shape
        r_lo, r_hi = max(row, self.row0), min(row + h, self.row0 + self.height)
        c_lo, c_hi = max(col, self.col0), min(col + w, self.col0 + self.width)
        if r_lo >= r_hi or c_lo >= c_hi:
            return
        need = r_hi - self.row0 - self.top
        if need > self.acc.shape[0]:
            grow = np.zeros((need - self.acc.shape[0], self.width), np.float32)
            self.acc, self.wsum = np.concatenate([self.acc, grow]), np.concatenate([self.wsum, grow])
        src = (slice(r_lo - row, r_hi - row), slice(c_lo - col, c_hi - col))
        dst = (
            slice(r_lo - self.row0 - self.top, r_hi - self.row0 - self.top),
            slice(c_lo - self.col0, c_hi - self.col0),
        )
        wt = weight[src]
        self.acc[dst] += np.nan_to_num(prob[src]) * wt
        self.wsum[dst] += wt

    def flush(self, upto: int) -> tuple[int, np.ndarray] | None:
        """Finish window rows [top, upto): (their first row, probabilities with NaN where no weight), or None."""
        upto = min(upto, self.height)
        n = upto - self.top
        if n <= 0:
            return None
        a, w = self.acc[:n], self.wsum[:n]
        if a.shape[0] < n:  # rows no tile touched: all nodata
            pad = np.zeros((n - a.shape[0], self.width), np.float32)
            a, w = np.concatenate([a, pad]), np.concatenate([w, pad])
        ok = w > 0
        prob = np.where(ok, a / np.where(ok, w, 1), np.nan).astype(np.float32)
        self.acc, self.wsum = self.acc[n:], self.wsum[n:]
        top, self.top = self.top, upto
        return top, prob


def _predict_padded(predict: PredictFn, x: np.ndarray, tile: int) -> np.ndarray:
    """Predict tiles smaller than `tile` (a raster smaller than one tile) padded with 0 (= nodata), cropped back."""
    _, _, h, w = x.shape
    if h == tile and w == tile:
        return predict(x)
    padded = np.zeros((*x.shape[:2], tile, tile), np.float32)
    padded[:, :, :h, :w] = x
    return predict(padded)[:, :h, :w]


def blend_tiles(
    layout: TileLayout,
    rows: Iterable[TileRow],
    predict: PredictFn,
    emit: EmitFn,
    batch_size: int = 4,
    is_canceled: Callable[[], bool] = lambda: False,
    progress: Callable[[float], None] = lambda _p: None,
    cancel_message: str = "Cancelled.",
) -> int:
    """Predict the tiles of `rows` (in lattice order) in full batches, blend them and emit the finished rows.

    Batches fill across lattice rows; a window row is emitted as soon as every tile that can touch it is blended.

    Returns:
        The number of tiles predicted.

    Raises:
        OperationCanceled: is_canceled() turned true.

    """
    acc = BlendAccumulator(layout)
    row0, height = layout.window[1], layout.window[3]
    next_row = dict(zip(layout.rows, [*layout.rows[1:], row0 + height]))
    pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (row, col, data, valid)
    open_rows: dict[int, int] = {}  # lattice row → tiles not yet blended
    done = predicted = 0
    batch_size = max(1, batch_size)

    def run_batch() -> None:
        nonlocal done, predicted
        if is_canceled():
            raise OperationCanceled(cancel_message)
        batch, pending[:] = pending[:batch_size], pending[batch_size:]
        probs = _predict_padded(predict, np.stack([b[2] for b in batch]), layout.tile)  # (B, th, tw)
        for (r, c, _, v), p in zip(batch, probs):
            acc.add(r, c, p, layout.weights(r, c) * v)
            open_rows[r] -= 1
        predicted += len(batch)
        done += len(batch)
        progress(100.0 * done / max(layout.count, 1))
        finish()

    def finish() -> None:
        # Window rows before the first lattice row with tiles still open (or still unread) are final.
        last = None
        while open_rows and next(iter(open_rows.values())) == 0:
            last = next(iter(open_rows))
            del open_rows[last]
        if open_rows:
            bound = next(iter(open_rows))
        elif last is not None:
            bound = next_row[last]
        else:
            return
        out = acc.flush(bound - row0)
        if out is not None:
            emit(*out)

    for tr in rows:
        open_rows[tr.row] = len(tr.cols)
        done += tr.skipped
        pending.extend((tr.row, c, d, v) for c, d, v in zip(tr.cols, tr.data, tr.valid))
        finish()
        while len(pending) >= batch_size:
            run_batch()
    while pending:
        run_batch()
    out = acc.flush(height)
    if out is not None:
        emit(*out)
    progress(100.0)
    return predicted


_END = object()


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Iterate `items` produced by a background thread up to `depth` ahead (I/O overlaps the consumer's work).

    Exceptions in the producer are re-raised in the consumer; closing the iterator stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as exc:  # handed to the consumer
            q.put((_END, exc))
        finally:  # a generator source runs its own clean-up (e.g. a nested prefetch) in this thread
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="rtsfusion-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


class BackgroundWriter:
    """Run calls (writes) in order on one background thread, at most `depth` waiting; errors surface on close."""

    def __init__(self, depth: int = 2) -> None:
        """Start the thread."""
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rtsfusion-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised by submit/close in the caller's thread
                    self._error = exc

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a call (blocks while `depth` calls wait); raises an earlier call's error."""
        if self._error is not None:
            raise self._error
        self._q.put(job)

    def close(self) -> None:
        """Wait for the queued calls to finish; raise the first error one of them met."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
