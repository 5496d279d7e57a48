"""Safe output writing: a temporary file beside the target, moved into place only when the write succeeds.

A failed or cancelled run leaves a file that was already at the target untouched, no partial file, no temporary
side-car (GeoTIFF .aux.xml/.ovr, GeoPackage -wal/-shm, shapefile parts) and no folder it created itself. Also the
checks every writer shares: an output must never be one of the run's inputs, and its folder must be writable.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Mapping

from .errors import RtsFusionError

# Side-cars named <file><suffix> (GDAL auxiliary files, SQLite journals).
_APPENDED_SIDECARS = (".aux.xml", ".ovr", ".msk", "-wal", "-shm", "-journal")
# Side-cars named <stem><suffix> (the parts of a shapefile, a GeoTIFF's world file).
_STEM_SIDECARS = {
    ".shp": (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx"),
    ".tif": (".tfw",),
    ".tiff": (".tfw",),
}


class OutputError(RtsFusionError):
    """An output cannot be written where it was asked for (it is an input, or its folder is not writable)."""


def _file_path(path: str) -> str:
    """The file part of a path that may carry QGIS's '|layername=…' suffix, absolute."""
    return os.path.abspath(os.path.expanduser(str(path).split("|", 1)[0]))


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file: equal after resolving links, or the same inode (a hard link)."""
    pa, pb = _file_path(a), _file_path(b)
    if os.path.normcase(os.path.realpath(pa)) == os.path.normcase(os.path.realpath(pb)):
        return True
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist yet
        return False


def check_not_input(output: str, inputs: Mapping[str, str | None], what: str = "output") -> None:
    """Refuse an output that would replace one of the inputs (same path, a link to it, or its GeoPackage).

    Args:
        output: Path the output would be written to.
        inputs: Input label → path (a path may carry '|layername=…': the whole file counts, since writing the
            output replaces the file that holds the layer). None values are ignored.
        what: The output's name, for the message.

    Raises:
        OutputError: Naming the output and the input it would destroy.

    """
    for label, path in inputs.items():
        if path and same_file(output, path):
            raise OutputError(
                f"The {what} would be written to '{_file_path(output)}', which is the input {label} "
                f"('{_file_path(path)}'). Writing it would destroy the input: choose another file name."
            )


def check_distinct(outputs: Mapping[str, str | None]) -> None:
    """Refuse two outputs of one run that point to the same file (the second would overwrite the first)."""
    seen: list[tuple[str, str]] = []
    for label, path in outputs.items():
        if not path:
            continue
        for other_label, other in seen:
            if same_file(path, other):
                raise OutputError(
                    f"The {other_label} and the {label} would both be written to '{_file_path(path)}': "
                    "give them different file names."
                )
        seen.append((label, path))


def _missing_folders(folder: str, what: str) -> list[str]:
    """Folders to create for `folder` (outermost first); raises when the nearest existing one is unusable."""
    missing = []
    current = folder
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not os.path.isdir(current):
        raise OutputError(f"Cannot write the {what} into '{folder}': '{current}' is a file, not a folder.")
    if not os.access(current, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write the {what} into '{folder}': the folder '{current}' is not writable "
            "(choose a folder you have write permission for)."
        )
    return missing[::-1]


def check_writable(path: str, what: str = "output") -> None:
    """Refuse an output whose folder cannot be created or written, or that names an existing folder."""
    target = _file_path(path)
    if os.path.isdir(target):
        raise OutputError(f"The {what} '{target}' is an existing folder; give a file name.")
    _missing_folders(os.path.dirname(target), what)
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise OutputError(f"The {what} '{target}' exists and is read-only; choose another file name.")


def _stale_sidecars(target: str) -> list[str]:
    stem, ext = os.path.splitext(target)
    names = [target + s for s in _APPENDED_SIDECARS]
    names += [stem + s for s in _STEM_SIDECARS.get(ext.lower(), ())]
    return names


class AtomicOutput:
    """A temporary path beside `target`, moved onto it by `commit()` or removed by `discard()`.

    Use it as a context manager (commit on success, discard on any exception, cancellation included), or call
    `commit()`/`discard()` yourself. The temporary name keeps the target's extension, so GDAL picks the same
    driver; every file named after the temporary stem (its side-cars) is moved or removed with it, and stale
    side-cars of a file that was at the target are removed on commit so they cannot describe the new data.

    Args:
        target: The final path.
        what: The output's name, for error messages ("fused stack", "slump polygons", ...).

    """

    def __init__(self, target: str, what: str = "output") -> None:
        self.target = _file_path(target)
        self.what = what
        folder = os.path.dirname(self.target)
        if os.path.isdir(self.target):
            raise OutputError(f"The {what} '{self.target}' is an existing folder; give a file name.")
        self._created = _missing_folders(folder, what)
        for d in self._created:
            try:
                os.mkdir(d)
            except OSError as exc:
                self._remove_created()
                raise OutputError(f"Cannot create the folder '{d}' for the {what}: {exc.strerror}.") from exc
        name = os.path.basename(self.target)
        stem, ext = os.path.splitext(name)
        self._tmp_stem = os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:8]}.part")
        self.path = self._tmp_stem + ext
        self._done = False

    def _tmp_files(self) -> list[str]:
        folder = os.path.dirname(self.path)
        prefix = os.path.basename(self._tmp_stem)
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        # The stem carries a random token, so whatever starts with it was written by this output.
        return [os.path.join(folder, n) for n in names if n.startswith(prefix)]

    def _remove_created(self) -> None:
        for d in reversed(self._created):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only when empty: never removes anything else

    def commit(self) -> str:
        """Move the written file (and its side-cars) onto the target; returns the target path."""
        if self._done:
            return self.target
        if not os.path.exists(self.path):
            self.discard()
            raise OutputError(f"The {self.what} was not written ('{self.target}').")
        tmp_stem = self._tmp_stem
        target_stem = os.path.splitext(self.target)[0]
        moves = [(p, target_stem + p[len(tmp_stem) :]) for p in self._tmp_files() if p != self.path]
        new_names = {dst for _, dst in moves}
        for stale in _stale_sidecars(self.target):
            if stale not in new_names and os.path.isfile(stale):
                os.remove(stale)
        os.replace(self.path, self.target)
        for src, dst in moves:
            os.replace(src, dst)
        self._done = True
        return self.target

    def discard(self) -> None:
        """Remove the temporary file, its side-cars and the folders this output created (when empty)."""
        if self._done:
            return
        for p in self._tmp_files():
            with contextlib.suppress(OSError):
                os.remove(p)
        self._remove_created()
        self._done = True

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_output(target: str, what: str = "output") -> AtomicOutput:
    """A temporary path for the target, moved onto it when the `with` block succeeds (removed otherwise)."""
    return AtomicOutput(target, what)


class AtomicOutputs:
    """Several outputs that succeed or fail together (e.g. a probability raster and its mask)."""

    def __init__(self, targets: Iterable[tuple[str | None, str]]) -> None:
        self.outputs: list[AtomicOutput | None] = []
        try:
            for target, what in targets:
                self.outputs.append(AtomicOutput(target, what) if target else None)
        except BaseException:
            self.discard()
            raise

    @property
    def paths(self) -> list[str | None]:
        """The temporary paths, None where no output was asked for."""
        return [o.path if o else None for o in self.outputs]

    def commit(self) -> None:
        """Move every output into place."""
        for o in self.outputs:
            if o:
                o.commit()

    def discard(self) -> None:
        """Remove every temporary output (last first, so a folder the first one created is empty by then)."""
        for o in reversed(self.outputs):
            if o:
                o.discard()

    def __enter__(self) -> list[str | None]:
        return self.paths

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
