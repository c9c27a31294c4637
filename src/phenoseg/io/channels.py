"""Channels: arrays in the layouts users have, and channels chosen by name or index (one place for both)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.images import Image, default_channel_names


def as_cyx(array: np.ndarray, axes: str | None = None) -> tuple[np.ndarray, bool]:
    """An array in a common layout → ((C, Y, X), is_rgb).

    ``axes`` is "YX", "CYX" or "YXC" (any order of Y, X and C). Without it: 2D is (Y, X); 3D is (C, Y, X),
    except an array whose last axis has 3 or 4 entries and whose first has more than 4, which is RGB(A)
    (Y, X, C), as a Cellpose or scikit-image user would hand it over. An alpha channel is dropped.
    """
    arr = np.asarray(array)
    if axes is None:
        if arr.ndim == 2:
            axes = "YX"
        elif arr.ndim == 3:
            axes = "YXC" if arr.shape[-1] in (3, 4) and arr.shape[0] > 4 else "CYX"
        else:
            raise PhenosegError(f"image array of shape {arr.shape}: expected (Y, X), (C, Y, X) or (Y, X, C); "
                                "pass axes=")
    axes = axes.upper()
    if sorted(axes) not in (sorted("YX"), sorted("CYX")) or len(axes) != arr.ndim:
        raise PhenosegError(f"axes='{axes}' does not describe an array of shape {arr.shape} (use e.g. 'YXC')")
    if "C" not in axes:
        arr, axes = arr[None], "C" + axes
    arr = np.transpose(arr, [axes.index("C"), axes.index("Y"), axes.index("X")])
    rgb = arr.shape[0] in (3, 4) and axes.index("C") == 2
    if rgb and arr.shape[0] == 4:
        arr = arr[:3]
    return np.ascontiguousarray(arr), rgb


def image_from_array(array: np.ndarray, axes: str | None = None, pixel_size_um: float | None = None,
                     channel_names: Sequence[str] | None = None) -> Image:
    """An :class:`Image` from an array in any layout :func:`as_cyx` accepts."""
    data, rgb = as_cyx(array, axes)
    if data.dtype.kind not in "buif":
        raise PhenosegError(f"unsupported pixel type {data.dtype} (need integer or float pixels)")
    if data.dtype.kind == "f" and not np.isfinite(data).any():
        raise PhenosegError("the image has no finite pixel (all NaN or infinite)")
    n = data.shape[0]
    names = list(channel_names) if channel_names else default_channel_names(n, rgb)
    if len(names) != n:
        raise PhenosegError(f"channel_names has {len(names)} names for {n} channels")
    return Image(data=data, pixel_size_um=pixel_size_um, channel_names=names, rgb=rgb and n == 3)


def channel_indices(names: list[str], spec: str | Sequence[str | int] | None, where: str = "image"
                    ) -> list[int] | None:
    """0-based indices of the channels named or numbered in ``spec`` (a comma-separated string or a list
    of names / indices; negative indices count from the end). None: all channels."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    tokens = [t.strip() for t in spec.split(",") if t.strip()] if isinstance(spec, str) else list(spec)
    picks = []
    for token in tokens:
        text = str(token)
        folded = [n.casefold() for n in names]
        if text in names:
            picks.append(names.index(text))
        elif text.casefold() in folded:  # "dapi" for "DAPI", "red" for "Red"
            picks.append(folded.index(text.casefold()))
        elif text.lstrip("-").isdigit() and -len(names) <= int(text) < len(names):
            picks.append(int(text) % len(names))
        else:
            raise PhenosegError(f"{where}: no channel '{text}' (channels: {', '.join(names)})")
    return picks


def select_channels(image: Image, spec: str | Sequence[str | int] | None) -> Image:
    """Keep the channels named or numbered (0-based) in ``spec``, in that order."""
    picks = channel_indices(image.channel_names, spec, image.path or "image")
    if picks is None:
        return image
    return Image(image.data[picks], image.pixel_size_um, [image.channel_names[i] for i in picks], image.path,
                 rgb=image.rgb and picks == [0, 1, 2])
