"""Readers and writers."""

from phenoseg.io.images import Image, read_image
from phenoseg.io.labels import read_labels, write_labels

__all__ = ["Image", "read_image", "read_labels", "write_labels"]
