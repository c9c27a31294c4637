"""Which bundled model and which channels fit an image, decided from its metadata and pixels, with the reason
in one line: nuclear-stain channel names, dark vs bright background, empty channels.

The result is a model name and a list of channel indices into the image (a channel may repeat: a grey
brightfield image goes to the RGB model as [0, 0, 0]). ``--model`` / ``--channels`` override either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from phenoseg.errors import PhenosegError

NUCLEAR_NAMES = re.compile(
    r"(dapi|hoechst|\bdna|dsdna|nuclear|nucleus|nuclei|h3342|draq|syto|sytox|propidium|\bpi\b|ir19[13]|histone|"
    r"h3k|\bhh3\b|lamin)", re.IGNORECASE)
GENERIC_NAMES = re.compile(r"^(channel|ch|c)[ _-]?\d+$|^(red|green|blue|gr[ae]y)$", re.IGNORECASE)
MULTIPLEX = "fluorescence_nuclei_and_cells"  # the ChannelNet model: any number of fluorescence channels
EMPTY_SIGNAL = 0.02  # a channel whose spread is under this share of the widest channel's spread is empty


@dataclass
class Choice:
    """A model (bundled name; None: the one the caller gave) and the channels it reads, with the reason."""

    model: str | None
    channels: list[int] | None  # indices into the image's channels (None: all, in order)
    reason: str


def _sample(data: np.ndarray, n: int = 512) -> np.ndarray:
    step = max(1, max(data.shape[-2:]) // n)
    s = data[:, ::step, ::step].astype(np.float32)
    return np.where(np.isfinite(s), s, np.nan)


def spreads(data: np.ndarray) -> np.ndarray:
    """Per channel: the 99.5th minus the 0.5th percentile (the channel's signal range)."""
    s = _sample(data).reshape(data.shape[0], -1)
    return np.nanpercentile(s, 99.5, axis=1) - np.nanpercentile(s, 0.5, axis=1)


def bright_background(data: np.ndarray) -> bool:
    """Whether most of the image is bright (brightfield: light passes where there is no stain) rather than
    dark (fluorescence: light comes only from the stain). Judged on the mean over channels: is the median
    pixel in the upper half of the range between the 1st and 99th percentiles?"""
    sample = _sample(data)
    s = sample[:, np.isfinite(sample).all(axis=0)].mean(axis=0)
    if s.size == 0:
        return False
    lo, mid, hi = np.percentile(s, [1, 50, 99])
    return bool(hi > lo and (mid - lo) / (hi - lo) > 0.5)


def nuclear_channel(names: list[str], data: np.ndarray, rgb: bool) -> tuple[int, str]:
    """The channel holding the nuclear stain, and why: by name, else the only channel with signal, else blue
    of a dark RGB composite, else the first channel of unnamed ones. Named channels none of which is nuclear
    are refused with a hint (the user knows the panel)."""
    for i, name in enumerate(names):
        if NUCLEAR_NAMES.search(name):
            return i, f"channel '{name}' is a nuclear stain by its name"
    spread = spreads(data)
    full = [i for i in range(len(names)) if spread[i] > EMPTY_SIGNAL * max(spread.max(), 1e-12)]
    if len(full) == 1:
        return full[0], f"channel '{names[full[0]]}' is the only one with signal"
    if rgb and 2 in full:
        return 2, "nuclei from the blue channel (DAPI's colour in composites)"
    if all(GENERIC_NAMES.match(n) for n in names):
        first = full[0] if full else 0
        return first, (f"assumed the first channel with signal ('{names[first]}') holds the nuclei "
                       "(no channel names to go by)")
    raise PhenosegError(f"none of the channels ({', '.join(names)}) is named like a nuclear stain (DAPI, Hoechst, "
                        "DNA, ...): choose the nuclear channel with channels= (a name or a 0-based index)")


def choose(names: list[str], data: np.ndarray, rgb: bool, available) -> Choice:
    """The bundled model and channels for an image (``available``: the bundled models' names)."""
    n = len(names)
    bf, fl = "brightfield_nuclei", "fluorescence_nuclei"
    named_nuclear = any(NUCLEAR_NAMES.search(name) for name in names)
    if n in (1, 3) and not named_nuclear:
        if bright_background(data):
            if n == 1 and bf in available:
                return Choice(bf, [0, 0, 0], "bright background: a grey brightfield image, on the RGB brightfield "
                                             "model")
            if n == 3 and bf in available:
                return Choice(bf, None, "bright background: brightfield")
        elif n == 1 and fl in available:
            return Choice(fl, None, "dark background: fluorescence")
    if n >= 2 and not rgb and MULTIPLEX in available and not bright_background(data):
        spread = spreads(data)
        if int((spread > EMPTY_SIGNAL * max(spread.max(), 1e-12)).sum()) >= 2:
            return Choice(MULTIPLEX, None, f"fluorescence with {n} channels: nuclei and whole cells from all of them "
                                           "(ChannelNet; channels= picks a subset)")
    if fl not in available:
        raise PhenosegError(f"no bundled model fits a {n}-channel image; pass model= a model name or folder")
    i, why = nuclear_channel(names, data, rgb)
    kind = "dark background: a fluorescence composite" if rgb and not named_nuclear else "fluorescence"
    return Choice(fl, [i], f"{kind}; {why}")


def fit(names: list[str], data: np.ndarray, rgb: bool, in_channels: int, model: str, accepts: bool) -> Choice:
    """Channels for a model the user chose: as they are when it accepts them, grey copied into RGB for an
    RGB model, the nuclear channel for a one-channel model; anything else is refused."""
    n = len(names)
    if accepts:
        return Choice(None, None, "")
    if n == 1 and in_channels == 3:
        return Choice(None, [0, 0, 0], f"grey image on the RGB model '{model}': the grey copied into R, G and B")
    if in_channels == 1:
        i, why = nuclear_channel(names, data, rgb)
        return Choice(None, [i], f"one-channel model '{model}': {why}")
    raise PhenosegError(f"model '{model}' expects {in_channels} channel(s), the image has {n} "
                        f"({', '.join(names)}): choose them with channels=")
