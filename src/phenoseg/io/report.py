"""One HTML report per run: thumbnails with outlines, counts, histograms, per-image rows, parameters.

Self-contained (images inlined as base64 PNG, charts as inline SVG). One line of script only records, in
``body[data-images-loaded]``, how many images rendered (used by the browser test).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenoseg.io.atomic import atomic_write
from phenoseg.io.overlay import display_rgb
from phenoseg.preprocess import resize_labels

THUMB = 640


@dataclass
class ImageReport:
    """What the report shows for one image."""

    name: str
    n_objects: int
    thumbnail_png: bytes
    areas: np.ndarray
    area_unit: str
    intensities: dict[str, np.ndarray] = field(default_factory=dict)
    model: str = ""
    pixel_size_um: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # warnings and choices, shown with the image
    class_counts: dict[str, int] = field(default_factory=dict)  # objects per class (after a classifier)
    positive_fractions: dict[str, float] = field(default_factory=dict)  # marker → fraction of positive cells


def positive_summary(fractions: dict[str, float]) -> str:
    """"positive: CD3 32 %, CD8 12 %" in channel order; empty without positivity."""
    if not fractions:
        return ""
    return "positive: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in fractions.items())


def class_summary(counts: dict[str, int], top: int = 8) -> str:
    """"epithelial 30, inflammatory 12" (most first, at most ``top``); empty without classes."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    more = f", {len(items) - top} more classes" if len(items) > top else ""
    return ", ".join(f"{k} {v}" for k, v in items[:top]) + more


def thumbnail(data: np.ndarray, labels: np.ndarray, size: int = THUMB) -> bytes:
    """PNG bytes of the image with object outlines, at most ``size`` px on its long side."""
    from PIL import Image as PILImage
    from skimage.segmentation import find_boundaries

    h, w = labels.shape
    f = min(1.0, size / max(h, w))
    th, tw = max(1, int(h * f)), max(1, int(w * f))
    rows = (np.arange(th) / f).astype(int).clip(0, h - 1)
    cols = (np.arange(tw) / f).astype(int).clip(0, w - 1)
    rgb = display_rgb(data[:, rows[:, None], cols[None, :]])
    small = resize_labels(labels, (th, tw))
    rgb[find_boundaries(small, mode="inner")] = (255, 230, 0)
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def svg_histogram(values: np.ndarray, title: str, bins: int = 30, width: int = 320, height: int = 160) -> str:
    """A bar chart of ``values`` as inline SVG."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        empty = f'<text x="10" y="20">{html.escape(title)}: no data</text>'
        return f'<svg width="{width}" height="{height}" role="img">{empty}</svg>'
    counts, edges = np.histogram(v, bins=bins)
    top = max(int(counts.max()), 1)
    plot_h = height - 40
    bw = (width - 20) / bins
    bars = "".join(
        f'<rect x="{10 + i * bw:.1f}" y="{20 + plot_h - c / top * plot_h:.1f}" width="{bw - 1:.1f}" '
        f'height="{c / top * plot_h:.1f}" fill="#4a7bb7"><title>{edges[i]:.3g}–{edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="10" y="14" font-size="12">{html.escape(title)}</text>{bars}'
        f'<text x="10" y="{height - 4}" font-size="10">{edges[0]:.3g}</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text></svg>'
    )


def render(reports: list[ImageReport], parameters: dict, failures: list[tuple[str, str]]) -> str:
    """The report's HTML."""
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{r.n_objects}"
        f"{'' if not r.class_counts else ' (' + html.escape(class_summary(r.class_counts)) + ')'}</td>"
        f"<td>{html.escape(r.model)}</td>"
        f"<td>{'' if r.pixel_size_um is None else f'{r.pixel_size_um:g}'}</td><td>{r.seconds:.1f}</td>"
        f"<td>{html.escape('; '.join(r.notes))}</td></tr>"
        for r in reports
    )
    sections = []
    for r in reports:
        b64 = base64.b64encode(r.thumbnail_png).decode()
        charts = svg_histogram(r.areas, f"object area ({r.area_unit})")
        charts += "".join(svg_histogram(v, f"mean intensity: {k}") for k, v in list(r.intensities.items())[:4])
        sections.append(
            f'<section><h2>{html.escape(r.name)}</h2><p>{r.n_objects} objects'
            f'{"" if not r.class_counts else ": " + html.escape(class_summary(r.class_counts))}</p>'
            + (f'<p>{html.escape(positive_summary(r.positive_fractions))}</p>' if r.positive_fractions else "")
            + "".join(f'<p class="note">⚠ {html.escape(n)}</p>' for n in r.notes)
            + f'<img src="data:image/png;base64,{b64}" alt="{html.escape(r.name)} with outlines">'
            f'<div class="charts">{charts}</div></section>'
        )
    fail = "".join(f"<li>{html.escape(n)}: {html.escape(m)}</li>" for n, m in failures)
    total = sum(r.n_objects for r in reports)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>phenoseg report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%;border:1px solid #999}}
.charts svg{{margin:6px;border:1px solid #eee}}.note{{color:#a40}}</style></head><body>
<script>addEventListener("load", () => {{
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = ok + "/" + document.images.length;
}});</script>
<h1>phenoseg report</h1>
<p>{len(reports)} image(s), {total} objects{f', {len(failures)} failed' if failures else ''}.</p>
<table><thead><tr><th>image</th><th>objects</th><th>model</th><th>µm/px</th><th>seconds</th><th>notes</th></tr></thead>
<tbody>{rows}</tbody></table>
{'<h2>Failed inputs</h2><ul>' + fail + '</ul>' if fail else ''}
<h2>Parameters</h2><pre>{html.escape(json.dumps(parameters, indent=2, default=str))}</pre>
{''.join(sections)}
</body></html>
"""


def write_report(path: str | os.PathLike, reports: list[ImageReport], parameters: dict,
                 failures: list[tuple[str, str]] | None = None) -> Path:
    """Write ``report.html`` atomically."""
    p = Path(path)
    with atomic_write(p) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(render(reports, parameters, failures or []))
    return p
