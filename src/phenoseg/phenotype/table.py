"""The per-object table: what segmentation knows of each object, plus what per-object passes add.

Segmentation gives every object an id (its label), a centroid, a bounding box and a score. Passes that run
after the labels exist add to it: measurements (:mod:`phenoseg.phenotype.measurements`), and later classes
or marker positivity, as named columns. Every writer (GeoJSON, CSV, AnnData, the slide parts) writes from
the table, so a column a pass adds appears in every output at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage as ndi

from phenoseg.phenotype.measurements import Measurements, measure


@dataclass
class ObjectTable:
    """One row per object of one target; row i describes label ``ids[i]``.

    ``centroid_y`` / ``centroid_x`` are in pixels of the label image (pixel centres at integers), ``bbox``
    is (y0, x0, y1, x1) (end exclusive), ``score`` the segmenter's seed score (NaN when unknown).
    ``columns`` holds the columns added by per-object passes, written under their names by every writer;
    ``classes`` the class names and display colours once a classifier has run (column ``class``);
    ``measurement_names`` the name a column takes among QuPath's measurements, where it differs.
    """

    target: str
    ids: np.ndarray
    centroid_y: np.ndarray
    centroid_x: np.ndarray
    bbox: np.ndarray
    score: np.ndarray
    measurements: Measurements | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    classes: tuple[list[str], list[tuple[int, int, int]]] | None = None  # class names, colours (classified)
    measurement_names: dict[str, str] = field(default_factory=dict)  # column → its GeoJSON measurement name

    def __len__(self) -> int:
        return int(self.ids.size)

    def add_column(self, name: str, values) -> None:
        """Add (or replace) a per-object column; ``values`` has one entry per row."""
        arr = np.asarray(values)
        if arr.shape[:1] != (len(self),):
            raise ValueError(f"column '{name}' has {arr.shape[:1]} values for {len(self)} objects")
        self.columns[name] = arr

    def column_rows(self) -> dict[int, dict[str, float | str]]:
        """id → the added columns of that object (for GeoJSON properties), built in one pass."""
        names = list(self.columns)
        values = [self.columns[n].tolist() for n in names]  # Python scalars, JSON-serialisable
        return {label: {n: v[r] for n, v in zip(names, values)} for r, label in enumerate(self.ids.tolist())}

    def classification(self) -> dict[int, tuple[str, tuple[int, int, int]]]:
        """id → (class name, colour) of classified objects (empty before a classifier ran)."""
        if self.classes is None or "class" not in self.columns:
            return {}
        colour = dict(zip(*self.classes))
        return {int(i): (str(c), tuple(colour.get(c, (128, 128, 128))))
                for i, c in zip(self.ids.tolist(), self.columns["class"].tolist()) if c}

    def scores_by_label(self) -> np.ndarray:
        """Scores indexed by label − 1 (NaN for ids without a row), as the GeoJSON writer takes them."""
        n = int(self.ids.max(initial=0))
        out = np.full(n, np.nan)
        if len(self):
            out[self.ids - 1] = self.score
        return out


def object_centroids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(area, centroid y, centroid x) of labels 0..max, indexed by label (NaN centroids for absent labels);
    one pass of ``bincount`` over the pixels."""
    n = int(labels.max(initial=0))
    lab = labels.astype(np.int64, copy=False).ravel()
    area = np.bincount(lab, minlength=n + 1)
    yy, xx = np.divmod(np.arange(lab.size), labels.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return area, np.bincount(lab, yy, n + 1) / area, np.bincount(lab, xx, n + 1) / area


def object_table(labels: np.ndarray, target: str, scores: np.ndarray | None = None,
                 offset: tuple[float, float] = (0.0, 0.0)) -> ObjectTable:
    """The table of every object of ``labels``; ``scores[i]`` is the score of label i + 1; ``offset`` (y, x)
    is added to centroids and boxes (a tile's position in its slide)."""
    lab = np.asarray(labels)
    slices = ndi.find_objects(lab.astype(np.int64, copy=False)) if lab.size else []
    ids = np.array([i + 1 for i, s in enumerate(slices) if s is not None], np.int64)
    bbox = np.array([[s.start for s in slices[i - 1]] + [s.stop for s in slices[i - 1]] for i in ids],
                    np.float64).reshape(-1, 4)
    if ids.size:
        _, cy, cx = object_centroids(lab)
        cy, cx = cy[ids], cx[ids]
    else:
        cy = cx = np.zeros(0)
    score = np.full(ids.size, np.nan)
    if scores is not None and ids.size:
        sc = np.asarray(scores, np.float64)
        ok = ids - 1 < sc.size
        score[ok] = sc[ids[ok] - 1]
    oy, ox = offset
    bbox = bbox + np.array([oy, ox, oy, ox])
    return ObjectTable(target, ids, cy + oy, cx + ox, bbox, score)


@dataclass
class PassContext:
    """What a per-object pass may read: the image (C, Y, X) on the labels' grid, the label image of every
    target, the pixel size (µm/px, None when unknown) and the channel names."""

    image: np.ndarray
    labels: dict[str, np.ndarray]
    pixel_size_um: float | None
    channel_names: list[str]


class ObjectPass(Protocol):
    """A step after segmentation that adds to an :class:`ObjectTable` (measurements, classes, positivity).

    ``needs_all_objects``: the pass must see every object of an image at once (set attention over all
    cells); such passes cannot run tile row by tile row on a whole slide."""

    name: str
    needs_all_objects: bool

    def __call__(self, table: ObjectTable, context: PassContext) -> None: ...


@dataclass
class MeasurePass:
    """Morphology and intensities (QuPath / MCMICRO names) into ``table.measurements``. With a ``cells``
    label image the table describes cells and the nucleus is a compartment."""

    name: str = "measure"
    needs_all_objects: bool = False

    def __call__(self, table: ObjectTable, context: PassContext) -> None:
        nuclei = context.labels.get("nuclei")
        cells = context.labels.get("cells")
        main = context.labels[table.target]
        compartment = "Cell" if table.target == "cells" else "Nucleus"
        if nuclei is None or table.target != "cells":
            nuclei, cells = main, None
        m = measure(context.image, nuclei, cells, context.pixel_size_um, context.channel_names, main=compartment)
        if not np.array_equal(m.labels, table.ids):
            raise ValueError("measurements and the object table describe different objects")
        table.measurements = m


@dataclass
class ColumnPass:
    """A pass from a function ``fn(table, context) → values``: one column named ``name`` (tests, quick
    experiments, user code)."""

    name: str
    fn: Callable[[ObjectTable, PassContext], np.ndarray]
    needs_all_objects: bool = False

    def __call__(self, table: ObjectTable, context: PassContext) -> None:
        table.add_column(self.name, self.fn(table, context))


def run_passes(table: ObjectTable, context: PassContext, passes) -> ObjectTable:
    """Apply each pass in order; returns the table."""
    for p in passes:
        p(table, context)
    return table
