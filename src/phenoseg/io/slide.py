"""Lazy whole-slide readers: pyramidal TIFF / OME-TIFF (tifffile + zarr), SVS / NDPI (tiffslide when
installed, else tifffile) and OME-Zarr (zarr). Regions are read on demand as (C, Y, X); nothing reads the
whole level-0 image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.images import TIFF_SUFFIXES, default_channel_names
from phenoseg.io.tiff_metadata import channel_names_from_tiff, tiff_pixel_size

SLIDE_SUFFIXES = TIFF_SUFFIXES | {".svs", ".ndpi", ".scn", ".zarr"}
TIFFSLIDE_SUFFIXES = {".svs", ".ndpi", ".scn"}


@dataclass
class Level:
    """One pyramid level: a lazy array, the position of its axes, its size and pixel size."""

    array: object  # anything sliceable that returns numpy (zarr array, tiffslide reader)
    axes: str  # e.g. "YXS", "CYX", "YX"
    height: int
    width: int
    pixel_size_um: float | None


@dataclass
class Slide:
    """A lazily read multi-resolution image. ``levels[0]`` is full resolution."""

    path: str
    levels: list[Level]
    channel_names: list[str]
    rgb: bool = False
    _closers: list = field(default_factory=list, repr=False)

    @property
    def n_channels(self) -> int:
        """Number of channels (alpha dropped)."""
        return len(self.channel_names)

    @property
    def pixel_size_um(self) -> float | None:
        """Level-0 pixel size (µm/px), None when the file does not record one."""
        return self.levels[0].pixel_size_um

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Level-0 (height, width)."""
        return self.levels[0].height, self.levels[0].width

    def downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of ``level`` (along x)."""
        return self.levels[0].width / self.levels[level].width

    def read(self, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Region [y0:y1, x0:x1] of ``level`` as (C, h, w), clipped to the level's bounds."""
        lv = self.levels[level]
        y0, x0 = max(0, y0), max(0, x0)
        y1, x1 = min(lv.height, y1), min(lv.width, x1)
        try:
            if callable(lv.array):
                arr = lv.array(y0, y1, x0, x1)
            else:
                index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None)
                              for a in lv.axes)
                arr = np.asarray(lv.array[index])
        except Exception as exc:  # truncated or corrupt tiles raise many exception types
            raise PhenosegError(f"{self.path}: cannot read level {level} region "
                                f"y {y0}:{y1}, x {x0}:{x1} ({type(exc).__name__}: {exc})") from exc
        axes = lv.axes
        for i in reversed(range(len(axes))):  # drop singleton non-spatial axes (Z, T, ...)
            if axes[i] not in "YXCS":
                arr = arr.take(0, axis=i)
                axes = axes[:i] + axes[i + 1:]
        if "S" in axes:
            axes = axes.replace("S", "C")
        if "C" not in axes:
            arr, axes = arr[None], "C" + axes
        arr = np.transpose(arr, [axes.index("C"), axes.index("Y"), axes.index("X")])
        return np.ascontiguousarray(arr[: self.n_channels])

    def choose_level(self, target_um: float, level0_um: float | None = None) -> int:
        """The coarsest level whose pixels are not coarser than ``target_um`` (so only downsampling is
        left to do), using ``level0_um`` when the file records no pixel size."""
        base = level0_um or self.pixel_size_um
        if not base:
            return 0
        best = 0
        for i in range(len(self.levels)):
            if base * self.downsample(i) <= target_um * 1.02:
                best = i
        return best

    def thumbnail_level(self, max_side: int = 2048) -> int:
        """The finest level whose larger side is at most ``max_side`` (the coarsest level if none)."""
        for i, lv in enumerate(self.levels):
            if max(lv.height, lv.width) <= max_side:
                return i
        return len(self.levels) - 1

    def close(self) -> None:
        """Release file handles."""
        for c in self._closers:
            try:
                c()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
        self._closers.clear()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_slide_path(path: str | os.PathLike) -> bool:
    """True for file types read by :func:`open_slide` (TIFF family, SVS / NDPI, OME-Zarr folders)."""
    p = Path(path)
    is_zarr = p.is_dir() and ((p / ".zattrs").is_file() or (p / "zarr.json").is_file())
    return p.suffix.lower() in SLIDE_SUFFIXES or is_zarr


def _open_tiff(p: Path) -> Slide:
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(p)
    except Exception as exc:
        raise PhenosegError(f"{p}: cannot read slide ({type(exc).__name__}: {exc})") from exc
    try:
        series = tif.series[0]
        axes = series.axes
        levels: list[Level] = []
        base_px = tiff_pixel_size(tif, tif.pages[0])
        if base_px is None and tif.is_svs:
            base_px = _svs_mpp(tif.pages[0].description)
        shape0 = series.levels[0].shape
        w0 = shape0[axes.index("X")]
        for i, lv in enumerate(series.levels):
            shape = lv.shape
            h, w = shape[axes.index("Y")], shape[axes.index("X")]
            store = series.aszarr(level=i)
            levels.append(Level(zarr.open(store, mode="r"), axes, h, w, base_px * w0 / w if base_px else None))
        n = 1
        for a, s in zip(axes, shape0):
            if a in "CS":
                n *= s
        rgb = "S" in axes and shape0[axes.index("S")] in (3, 4)
        if rgb:
            n = 3
        names = channel_names_from_tiff(tif, n) or (
            default_channel_names(n, rgb))
    except PhenosegError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise PhenosegError(f"{p}: cannot read slide ({type(exc).__name__}: {exc})") from exc
    return Slide(str(p), levels, names, rgb, [tif.close])


def _svs_mpp(description: str) -> float | None:
    for part in (description or "").split("|"):
        key, _, value = part.partition("=")
        if key.strip().upper() == "MPP":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _open_tiffslide(p: Path) -> Slide:
    import tiffslide

    ts = tiffslide.TiffSlide(str(p))
    mpp = ts.properties.get("tiffslide.mpp-x")
    levels = []
    for i, (w, h) in enumerate(ts.level_dimensions):
        down = ts.level_downsamples[i]

        def reader(y0, y1, x0, x1, _i=i, _down=down):
            loc = (int(round(x0 * _down)), int(round(y0 * _down)))
            return np.asarray(ts.read_region(loc, _i, (x1 - x0, y1 - y0), as_array=True))

        levels.append(Level(reader, "YXS", int(h), int(w), float(mpp) * down if mpp else None))
    return Slide(str(p), levels, default_channel_names(3, True), True, [ts.close])


def _open_ome_zarr(p: Path) -> Slide:
    import zarr

    try:
        root = zarr.open_group(str(p), mode="r")
        attrs = dict(root.attrs)
        ome = attrs.get("ome", attrs)
        ms = ome["multiscales"][0]
        axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", ["c", "y", "x"])]
        ax = "".join({"c": "C", "y": "Y", "x": "X", "z": "Z", "t": "T"}.get(a.lower(), "Q") for a in axes)
        levels = []
        for ds in ms["datasets"]:
            arr = root[ds["path"]]
            scale = next((t["scale"] for t in ds.get("coordinateTransformations", []) if t.get("type") == "scale"),
                         None)
            px = float(scale[ax.index("X")]) if scale else None
            levels.append(Level(arr, ax, arr.shape[ax.index("Y")], arr.shape[ax.index("X")], px))
        n = levels[0].array.shape[ax.index("C")] if "C" in ax else 1
        names = [c.get("label", f"Channel {i + 1}") for i, c in enumerate(ome.get("omero", {}).get("channels", []))]
        if len(names) != n:
            names = default_channel_names(n)
        rgb = n == 3 and [s.lower() for s in names] == ["red", "green", "blue"]
    except PhenosegError:
        raise
    except Exception as exc:
        raise PhenosegError(f"{p}: not a readable OME-Zarr image ({type(exc).__name__}: {exc})") from exc
    return Slide(str(p), levels, names, rgb)


def open_slide(path: str | os.PathLike) -> Slide:
    """Open a slide lazily. Raises :class:`PhenosegError` with one line for missing, corrupt or
    unsupported files."""
    p = Path(path)
    if not p.exists():
        raise PhenosegError(f"{p}: no such file")
    if p.is_dir():
        return _open_ome_zarr(p)
    suffix = p.suffix.lower()
    if suffix in TIFFSLIDE_SUFFIXES:
        try:
            import tiffslide  # noqa: F401
        except ImportError:
            pass
        else:
            try:
                return _open_tiffslide(p)
            except Exception as exc:
                raise PhenosegError(f"{p}: cannot read slide ({type(exc).__name__}: {exc})") from exc
    if suffix in TIFF_SUFFIXES | TIFFSLIDE_SUFFIXES:
        return _open_tiff(p)
    raise PhenosegError(f"{p}: unsupported slide type '{suffix}' (use TIFF / OME-TIFF, SVS, NDPI or OME-Zarr)")


def slide_metadata_json(slide: Slide) -> str:
    """A short JSON description (levels, sizes, pixel sizes, channels) for logs and reports."""
    return json.dumps({"path": slide.path, "channels": slide.channel_names,
                       "levels": [{"height": lv.height, "width": lv.width, "pixel_size_um": lv.pixel_size_um}
                                  for lv in slide.levels]})
