"""OME-Zarr (NGFF v0.4, Zarr v2 layout): the image and its label images, written tile by tile, with pyramids.

The root is an NGFF image (``c, y, x``, the segmented image at the labels' grid, with ``omero`` channel
names and colours) so that napari-ome-zarr, ``ome_zarr``'s Reader and validators find data at the root;
``labels/`` holds one multiscale per target (``{"labels": ["nuclei"]}``) whose ``image-label.source``
points back at the root, as the OME-NGFF 0.4 labels spec describes.
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
        zarr = _zarr()
        self.path, self.name, self.shape, self.chunk = Path(path), name, tuple(shape), chunk
        self.pixel_size_um = pixel_size_um
        key = f"labels/{name}/0"
        if create:
            root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
            self.array = _array(root, key, self.shape, (chunk, chunk), "uint32", 0)
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
        zarr = _zarr()
        root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
        group = root[f"labels/{self.name}"]
        level = len(build_pyramid(group, self.array, self.chunk, min_side, lambda block: block[::2, ::2])) - 1
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


RGB_COLOURS = ("FF0000", "00FF00", "0000FF")
PALETTE = ("0000FF", "00FF00", "FF0000", "FFFF00", "FF00FF", "00FFFF", "FFFFFF", "FF8000")


def _array(group, key: str, shape: tuple, chunks: tuple, dtype, fill):
    import numcodecs

    return group.create_array(key, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                              compressors=numcodecs.Zstd(level=3),
                              chunk_key_encoding={"name": "v2", "separator": "/"}, overwrite=True)


def build_pyramid(group, base, chunk: int, min_side: int, shrink) -> list:
    """Levels 1, 2, ... of ``base`` (an array ``group["0"]``, (..., H, W)) halved until its longer side is at most
    ``min_side``, one output chunk at a time (memory independent of the slide's size); ``shrink`` maps a
    (..., 2h, 2w) block to (..., h, w). Returns every level, ``base`` first."""
    levels = [base]
    h, w = base.shape[-2:]
    lead = tuple(base.shape[:-2])
    while max(h, w) > min_side and min(h, w) >= 2:
        h, w = (h + 1) // 2, (w + 1) // 2
        prev = levels[-1]
        arr = _array(group, str(len(levels)), lead + (h, w), tuple(1 for _ in lead) + (chunk, chunk), prev.dtype,
                     prev.fill_value)
        for y in range(0, h, chunk):
            for x in range(0, w, chunk):
                block = shrink(np.asarray(prev[..., 2 * y : 2 * (y + chunk), 2 * x : 2 * (x + chunk)]))
                arr[..., y : y + block.shape[-2], x : x + block.shape[-1]] = block
        levels.append(arr)
    return levels


class ImageWriter:
    """The root image (C, H, W) of the OME-Zarr at ``path``: blocks written where the tiles' cores fall,
    the rest (tiles without tissue) left at ``fill`` (white for brightfield, 0 for fluorescence)."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int], dtype, pixel_size_um: float | None,
                 fill: float = 0, chunk: int = 1024, create: bool = True):
        zarr = _zarr()
        self.path, self.shape, self.chunk, self.pixel_size_um = Path(path), tuple(shape), chunk, pixel_size_um
        self.dtype = np.dtype(dtype)
        root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
        if create:
            self.array = _array(root, "0", self.shape, (1, chunk, chunk), self.dtype, fill)
        else:
            self.array = root["0"]

    def write(self, y0: int, x0: int, block: np.ndarray) -> None:
        """Write a (C, h, w) block (float values are rounded and clipped to the image's type)."""
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            block = np.clip(np.rint(block), info.min, info.max)
        self.array[:, y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]] = block.astype(self.dtype, copy=False)

    def _mean2(self, block: np.ndarray) -> np.ndarray:
        """2 × 2 means of a (C, h, w) block (an odd last row / column repeated), in the image's type."""
        c, h, w = block.shape
        sh, sw = (h + 1) // 2, (w + 1) // 2
        pad = np.pad(block.astype(np.float32), ((0, 0), (0, 2 * sh - h), (0, 2 * sw - w)), mode="edge")
        mean = pad.reshape(c, sh, 2, sw, 2).mean(axis=(2, 4))
        return (np.rint(mean) if self.dtype.kind in "ui" else mean).astype(self.dtype)

    def finish(self, channel_names: list[str], rgb: bool, min_side: int = 512) -> int:
        """Build the pyramid (2 × 2 means, one output chunk at a time) and write the NGFF image metadata."""
        zarr = _zarr()
        root = zarr.open_group(str(self.path), mode="a", zarr_format=2)
        c = self.shape[0]
        levels = build_pyramid(root, self.array, self.chunk, min_side, self._mean2)
        level, prev = len(levels) - 1, levels[-1]
        px = self.pixel_size_um or 1.0
        axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        if self.pixel_size_um:
            for a in axes[1:]:
                a["unit"] = "micrometer"
        top = float(np.iinfo(self.dtype).max) if self.dtype.kind in "ui" else 1.0
        small = np.asarray(prev[...], np.float32).reshape(c, -1)  # the smallest level: display windows
        start, end = np.percentile(small, 0.1, axis=1), np.percentile(small, 99.9, axis=1)
        if rgb:
            start, end = np.zeros(c), np.full(c, top)
        colours = RGB_COLOURS if rgb else PALETTE
        root.attrs.update({
            "multiscales": [{"version": NGFF_VERSION, "name": "image", "axes": axes, "datasets": [
                {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1.0, px * 2**i, px * 2**i]}]}
                for i in range(level + 1)]}],
            "omero": {"version": NGFF_VERSION, "rdefs": {"model": "color"}, "channels": [
                {"label": name, "color": colours[i % len(colours)], "active": True,
                 "window": {"min": 0.0, "max": top, "start": float(start[i]),
                            "end": float(max(end[i], start[i] + 1e-6))}}
                for i, name in enumerate(channel_names)]},
        })
        return level + 1


def read_labels_level(path: str | os.PathLike, name: str = "nuclei", level: int = 0) -> np.ndarray:
    """One level of a label image written by :class:`LabelsWriter`, as a numpy array."""
    zarr = _zarr()
    return np.asarray(zarr.open_array(str(Path(path) / "labels" / name / str(level)), mode="r")[...])
