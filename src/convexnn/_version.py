"""Single source of the convexnn version (read by hatchling and by ``convexnn.__version__``)."""

__version__ = "0.1.0"
