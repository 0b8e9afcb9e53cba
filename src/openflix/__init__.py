"""openflix: the Python back end of a video streaming service."""

__version__ = "0.1.0"
