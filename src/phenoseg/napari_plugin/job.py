"""The work behind the napari widget, without Qt: a layer's array → labels and per-object tables.

Kept apart from the widget so it runs (and is tested) in any thread, with a progress callback and a cancel
check between steps (between tiles for large images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from phenoseg.errors import PhenosegError


class Cancelled(Exception):  # noqa: N818 — a request, not an error
    """The user pressed Cancel: the job stops at the next step and returns nothing."""


@dataclass
class JobRequest:
    """What the widget asks for. ``data``: the layer's array; ``rgb``: napari shows it as RGB(A);
    ``channels_first``: a 3-D non-RGB layer is a (C, Y, X) channel stack (not a Z stack)."""

    data: np.ndarray
    layer_name: str
    rgb: bool = False
    channels_first: bool = False
    channel_names: list[str] | None = None
    pixel_size_um: float | None = None
    model: str = "auto"
    channels: str | None = None
    classify: bool = False
    positivity: bool = False  # marker positivity of every cell for every channel (bundled marker_positivity)
    device: str = "auto"
    targets: tuple[str, ...] = ("nuclei", "cells")  # the label images wanted (those the model makes)


@dataclass
class JobResult:
    """Labels per target, each target's per-object table (columns as the CSV names them, ``CellID`` = label),
    class colours (class name → RGB) and what the run decided."""

    labels: dict[str, np.ndarray]
    tables: dict[str, dict[str, np.ndarray]]
    pixel_size_um: float
    model: str
    class_colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    classes: dict[int, str] = field(default_factory=dict)  # label → class of the main target
    notes: list[str] = field(default_factory=list)
    objects: object = None  # the phenoseg ObjectSet behind it, for Save
    image: object = None  # the phenoseg Image it was computed on, for Save
    passes: list = field(default_factory=list)


@lru_cache(maxsize=4)
def segmenter(model: str, device: str):
    """One Segmenter per model and device for the session (the network is loaded once)."""
    from phenoseg.inference.segmenter import Segmenter

    return Segmenter(model, device=device)


def layer_image(req: JobRequest):
    """The layer's data as a phenoseg Image, or a PhenosegError in plain words for what cannot be segmented."""
    from phenoseg.inference.segmenter import to_image

    data = np.asarray(req.data)
    if data.ndim == 2:
        axes = "YX"
    elif data.ndim == 3 and req.rgb:
        axes = "YXC"
        data = data[..., :3]  # RGBA → RGB
    elif data.ndim == 3 and req.channels_first:
        axes = "CYX"
    elif data.ndim == 3:
        raise PhenosegError(f"layer '{req.layer_name}' is 3-D {data.shape} and not RGB: phenoseg segments 2-D "
                            "images. If its first axis holds channels (C, Y, X), tick 'channels first'; for a Z "
                            "stack or a time series, pick one plane (napari: Image → Split / a 2-D layer).")
    else:
        raise PhenosegError(f"layer '{req.layer_name}' has {data.ndim} dimensions {data.shape}: phenoseg segments "
                            "2-D images (Y, X), RGB images or (C, Y, X) channel stacks")
    if data.dtype.kind not in "uif" and data.dtype != bool:
        raise PhenosegError(f"layer '{req.layer_name}': pixel type {data.dtype} is not an image")
    image = to_image(np.ascontiguousarray(data), axes)
    if req.channel_names and len(req.channel_names) == image.data.shape[0]:
        image.channel_names = list(req.channel_names)
    return image


def select(image, channels: str):
    """``image`` with only the channels named or numbered in ``channels`` ("0,2" or "DAPI,CD45")."""
    from phenoseg.io.channels import select_channels

    return select_channels(image, channels)


def run_job(req: JobRequest, progress: Callable[[str, int, int], None] | None = None,
            cancelled: Callable[[], bool] | None = None) -> JobResult:
    """Segment (and with ``req.classify``, classify; with ``req.positivity``, score every channel's marker
    positivity) the layer's image. ``progress(stage, done, total)`` is called as work advances; ``cancelled()``
    is checked between steps (raising :class:`Cancelled`)."""
    from phenoseg.outputs.image import ObjectSet, main_objects
    from phenoseg.phenotype.table import MeasurePass, PassContext, object_table, run_passes

    def step(stage: str, done: int, total: int) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled()
        if progress is not None:
            progress(stage, done, total)

    step("reading the layer", 0, 1)
    image = layer_image(req)
    if not req.pixel_size_um:
        raise PhenosegError(f"layer '{req.layer_name}': no pixel size. Enter it (µm per pixel, e.g. 0.25 for a 40x "
                            "scan, 0.5 for 20x) or set the layer's scale in µm")
    seg = segmenter(req.model, req.device)
    net, _, _ = seg.fit_image(image if not req.channels else select(image, req.channels))
    if not set(req.targets) & set(net.config.targets):
        raise PhenosegError(f"model {net.config.name} finds {', '.join(net.config.targets)}, not "
                            f"{' or '.join(req.targets)}: pick a model that finds them")
    result = seg.segment(image, req.pixel_size_um, channels=req.channels or None,
                         progress=lambda d, t: step("segmenting", d, t))
    labels, passes = dict(result.labels), []
    if req.classify:
        from phenoseg.phenotype.classify import classify_labels, load_classifier

        step("classifying", 0, 1)
        clf = load_classifier("auto", req.device, False, image.data.shape[0])
        labels, cpass, _ = classify_labels(clf, image.data, labels, result.pixel_size_um, None)
        passes.append(cpass)
    if req.positivity:
        from phenoseg.phenotype.steps import positivity_pass

        step("marker positivity", 0, 1)
        passes.append(positivity_pass("auto", req.device, image, None, f"layer '{req.layer_name}'"))
    step("measuring", 0, 1)
    target, paired, scores = main_objects(labels, result.scores)
    table = object_table(paired[target], target, scores)
    run_passes(table, PassContext(image.data, paired, result.pixel_size_um, image.channel_names),
               [MeasurePass(), *passes])
    from phenoseg.io.tables import table_columns

    cols = table_columns(table)
    classification = table.classification()
    colours = dict(zip(*table.classes)) if table.classes else {}
    objects = ObjectSet(labels, result.scores, result.model, result.pixel_size_um, result.timings.get("total_s", 0.0),
                        list(result.notes))
    step("done", 1, 1)
    paired = {t: lab for t, lab in paired.items() if t in req.targets}
    return JobResult(paired, {t: cols for t in paired}, result.pixel_size_um, result.model,
                     {str(k): tuple(int(x) for x in v) for k, v in colours.items()},
                     {i: c for i, (c, _) in classification.items()}, list(result.notes), objects, image, passes)


def save_outputs(result: JobResult, outdir, stem: str) -> list:
    """Write what the CLI writes for an image (labels, GeoJSON, CSV, overlay, report data) into ``outdir``."""
    from pathlib import Path

    from phenoseg.outputs.image import parse_outputs, write_image_outputs

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    kinds = parse_outputs("labels,geojson,csv,overlay")
    written, _, _ = write_image_outputs(result.objects, result.image, stem, out, kinds, passes=result.passes)
    return written
