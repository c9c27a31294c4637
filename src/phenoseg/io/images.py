"""Reading PNG / JPEG / TIFF / OME-TIFF into (C, Y, X) arrays with pixel size and channel names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.tiff_metadata import channel_names_from_tiff, tiff_pixel_size

PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff", ".btf", ".tf8"}
SUPPORTED_SUFFIXES = PIL_SUFFIXES | TIFF_SUFFIXES


def default_channel_names(n: int, rgb: bool = False) -> list[str]:
    """Channel names as QuPath gives them: Red, Green, Blue for RGB, else Channel 1, Channel 2, ..."""
    return ["Red", "Green", "Blue"] if rgb and n == 3 else [f"Channel {i + 1}" for i in range(n)]


@dataclass
class Image:
    """An image as (C, Y, X) with its pixel size (µm/px, None when unknown) and channel names."""

    data: np.ndarray
    pixel_size_um: float | None = None
    channel_names: list[str] = field(default_factory=list)
    path: str = ""
    rgb: bool = False

    @property
    def shape_yx(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.data.shape[-2]), int(self.data.shape[-1])


def _check_values(data: np.ndarray, name: str) -> None:
    if data.dtype.kind not in "buif":
        raise PhenosegError(f"{name}: unsupported pixel type {data.dtype} (need integer or float pixels)")
    if data.ndim != 3 or data.shape[1] < 8 or data.shape[2] < 8:
        raise PhenosegError(f"{name}: image of shape {data.shape} is too small or not 2D (need at least 8×8 px)")
    if data.dtype.kind == "f" and not np.isfinite(data).any():
        raise PhenosegError(f"{name}: image has no finite pixel (all NaN or infinite)")
    # NaN / inf pixels (registered or stitched images) are outside the image; a constant image is a blank
    # field: both are handled by the segmenter, not refused here


UNKNOWN_AXES = "QI"  # tifffile's names for an axis it cannot name (a plain (C, Y, X) TIFF reads as QYX)
MAX_UNNAMED_CHANNELS = 64


def _to_cyx(arr: np.ndarray, axes: str, name: str) -> tuple[np.ndarray, bool]:
    """Arrange an array with tifffile-style axes (Y, X, C/S, Z, T, ...) as (C, Y, X). One unnamed axis (Q / I)
    of at most 64 planes in an image without a channel axis is its channel axis."""
    axes = axes.upper()
    unknown = [i for i, a in enumerate(axes) if a in UNKNOWN_AXES and arr.shape[i] > 1]
    if not any(a in "CS" for a in axes) and len(unknown) == 1 and arr.shape[unknown[0]] <= MAX_UNNAMED_CHANNELS:
        axes = axes[:unknown[0]] + "C" + axes[unknown[0] + 1:]
    keep = []
    for i, ax in enumerate(axes):
        if ax in "YX":
            keep.append(i)
        elif ax in "CS":
            keep.append(i)
        elif arr.shape[i] != 1:
            raise PhenosegError(
                f"{name}: axis {ax} has {arr.shape[i]} planes; phenoseg segments 2D images (pass one plane, or "
                f"axes= to say which axis holds the channels, e.g. {'C' + axes.replace(ax, '', 1)[-2:]!r})"
            )
    squeeze = tuple(i for i in range(arr.ndim) if i not in keep)
    arr = arr.squeeze(axis=squeeze) if squeeze else arr
    axes = "".join(a for i, a in enumerate(axes) if i in keep)
    rgb = "S" in axes and arr.shape[axes.index("S")] in (3, 4)
    if "C" in axes and "S" in axes:
        # merge C and S into one channel axis
        arr = np.moveaxis(arr, [axes.index("C"), axes.index("S")], [0, 1])
        arr = arr.reshape((-1,) + arr.shape[2:])
        axes = "C" + "".join(a for a in axes if a in "YX")
    elif "S" in axes:
        axes = axes.replace("S", "C")
    if "C" not in axes:
        arr = arr[None]
        axes = "C" + axes
    order = [axes.index("C"), axes.index("Y"), axes.index("X")]
    return np.ascontiguousarray(np.transpose(arr, order)), rgb


def _file_axes(given: str | None, own: str, shape: tuple, name: str) -> str:
    if given is None:
        return own
    axes = given.upper()
    if len(axes) != len(shape) or not set(axes) <= set("CYXZTSQ") or "Y" not in axes or "X" not in axes:
        raise PhenosegError(f"{name}: axes='{given}' does not describe its {len(shape)} dimensions {shape} "
                            f"(the file says {own}; use C for channels, Y and X)")
    return axes


def read_image(path: str | os.PathLike, axes: str | None = None) -> Image:
    """Read a 2D image as (C, Y, X). RGB(A) files give 3 channels (alpha dropped). ``axes`` (e.g. "CYX",
    "YXC") overrides the file's own axes: one letter per dimension of its first series (C for channels).

    Raises :class:`PhenosegError` with a one-line reason for unreadable or unsupported files.
    """
    p = Path(path)
    name = str(p)
    if not p.is_file():
        raise PhenosegError(f"{name}: no such file")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise PhenosegError(f"{name}: unsupported file type '{suffix}' (use PNG, JPEG, TIFF or OME-TIFF)")
    pixel_size = None
    names: list[str] = []
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                series = tif.series[0]
                arr = series.asarray()
                data, rgb = _to_cyx(arr, _file_axes(axes, series.axes, arr.shape, name), name)
                pixel_size = tiff_pixel_size(tif, tif.pages[0])
                names = channel_names_from_tiff(tif, data.shape[0])
        else:
            from PIL import Image as PILImage

            with PILImage.open(p) as im:
                im.load()
                if im.mode in ("P", "LA", "RGBA", "CMYK", "YCbCr", "PA"):
                    im = im.convert("RGB")
                arr = np.asarray(im)
            data, rgb = _to_cyx(arr, _file_axes(axes, "YXS" if arr.ndim == 3 else "YX", arr.shape, name), name)
    except PhenosegError:
        raise
    except Exception as exc:  # corrupt files raise many different exception types
        raise PhenosegError(f"{name}: cannot read image ({type(exc).__name__}: {exc})") from exc
    if rgb and data.shape[0] == 4:
        data = data[:3]
    if data.dtype.kind == "c":
        raise PhenosegError(f"{name}: unsupported pixel type {data.dtype}")
    _check_values(data, name)
    if not names:
        n = data.shape[0]
        names = default_channel_names(n, rgb)
    return Image(data=data, pixel_size_um=pixel_size, channel_names=names, path=name, rgb=rgb and data.shape[0] == 3)
