"""Exceptions the core raises for input a user must fix (Processing turns them into clear messages)."""


class RtsFusionError(ValueError):
    """Base class: bad or unusable input, described in words a user understands."""


class AlignmentError(RtsFusionError):
    """The input layers cannot be placed on one common grid (no overlap, no georeferencing, ...)."""


class FeatureError(RtsFusionError):
    """A requested feature cannot be derived from the inputs given."""


class EmptyExtentError(RtsFusionError):
    """The extent to process holds no valid pixel (all nodata): a region's unit outside the data is empty."""


class OperationCanceled(Exception):
    """The user cancelled a long operation; partial outputs have been removed."""
