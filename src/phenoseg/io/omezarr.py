"""OME-Zarr (NGFF v0.4, Zarr v2 layout) label images written chunk row by chunk row, with a pyramid.

The store holds a ``labels`` group (``{"labels": ["nuclei"]}``); each label image is a multiscale with
``y, x`` axes in micrometres and an ``image-label`` block, as the OME-NGFF 0.4 labels spec describes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

NGFF_VERSION = "0.4"


def _zarr():
    import zarr

    return zarr


class LabelsWriter:
    """Level 0 of label image ``name`` in the OME-Zarr at ``path``, written in whole chunk rows."""

    def __init__(self, path: str | os.PathLike, name: str, shape: tuple[int, int], pixel_size_um: float | None,
                 chunk: int = 1024, create: bool = True):
        import numcodecs

        zarr = _zarr()
        self.path, self.name, self.shape, self.chunk = Path(path), name, tuple(shape), chunk
        self.pixel_size_um = pixel_size_um
        key = f"labels/{name}/0"
        if create:
            root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
            self.array = root.create_array(
                key, shape=self.shape, chunks=(chunk, chunk), dtype="uint32", fill_value=0,
                compressors=numcodecs.Zstd(level=3), chunk_key_encoding={"name": "v2", "separator": "/"},
                overwrite=True)
        else:
            self.array = zarr.open_array(str(self.path / key), mode="r+")

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (h, W) at row ``y0``; y0 must start a chunk row (whole chunks are replaced)."""
        if y0 % self.chunk:
            raise ValueError("writes must start on a chunk boundary")
        self.array[y0 : y0 + rows.shape[0], :] = rows.astype(np.uint32, copy=False)

    def finish(self, min_side: int = 512, source: dict | None = None) -> int:
        """Build the pyramid (nearest-neighbour halving, streamed by chunk rows) and write the NGFF
        metadata. Returns the number of levels."""
        import numcodecs

        zarr = _zarr()
        root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
        group = root[f"labels/{self.name}"]
        prev, level = self.array, 0
        h, w = self.shape
        while max(h, w) > min_side and min(h, w) >= 2:
            h, w = (h + 1) // 2, (w + 1) // 2
            level += 1
            arr = group.create_array(
                str(level), shape=(h, w), chunks=(self.chunk, self.chunk), dtype="uint32", fill_value=0,
                compressors=numcodecs.Zstd(level=3), chunk_key_encoding={"name": "v2", "separator": "/"},
                overwrite=True)
            c = self.chunk
            for y in range(0, h, c):  # one output chunk at a time: memory independent of the slide's size
                for x in range(0, w, c):
                    src = prev[2 * y : min(2 * (y + c), prev.shape[0]) : 2, 2 * x : min(2 * (x + c), prev.shape[1]) : 2]
                    arr[y : y + src.shape[0], x : x + src.shape[1]] = src
            prev = arr
        px = self.pixel_size_um or 1.0
        unit = "micrometer" if self.pixel_size_um else None
        axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        if unit:
            for a in axes:
                a["unit"] = unit
        group.attrs.update({
            "multiscales": [{
                "version": NGFF_VERSION,
                "name": self.name,
                "axes": axes,
                "datasets": [{"path": str(i), "coordinateTransformations": [
                    {"type": "scale", "scale": [px * 2**i, px * 2**i]}]} for i in range(level + 1)],
            }],
            "image-label": {"version": NGFF_VERSION, "source": {"image": "../../"}},
        })
        labels = root["labels"]
        names = list(labels.attrs.get("labels", []))
        if self.name not in names:
            names.append(self.name)
        labels.attrs["labels"] = names
        if source:
            root.attrs["phenoseg"] = source
        return level + 1


def read_labels_level(path: str | os.PathLike, name: str = "nuclei", level: int = 0) -> np.ndarray:
    """One level of a label image written by :class:`LabelsWriter`, as a numpy array."""
    zarr = _zarr()
    return np.asarray(zarr.open_array(str(Path(path) / "labels" / name / str(level)), mode="r")[...])
