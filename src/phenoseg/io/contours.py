"""Outlines of every object of a label image in one vectorised pass (no trace per object).

Every pixel side between two different labels is a directed boundary edge, oriented so that its object lies
on its right (clockwise on screen, y down): the edges of an object form closed rings, its outer boundary
(positive area) and its holes (negative). An edge's successor starts where it ends; where an object touches
itself diagonally the ring turns towards the object, so rings never cross and a pinched-off background
region becomes a hole touching the shell (a valid polygon); the rarer ring that still touches itself (two
holes meeting diagonally) is split by ``shapely.make_valid``. Rings are found for all objects at once by
pointer doubling and straight runs are cut to their corners: the outline encloses exactly the object's pixels
(its area is the pixel count). An optional ``tolerance`` (Douglas–Peucker, topology kept) thins the pixel
staircase for smaller files at the cost of exactness. Coordinates are pixel corners
(pixel (r, c) spans x ∈ [c, c + 1], y ∈ [r, r + 1]), as QuPath expects.
"""

from __future__ import annotations

import numpy as np

DIRECTIONS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])  # E, S, W, N as (dx, dy)


def boundary_edges(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every boundary edge: (label, start x, start y, direction) with the object on the edge's right."""
    p = np.pad(np.asarray(labels), 1)
    inner = p[1:-1, 1:-1]
    parts = []
    # (neighbour, direction, start corner offset (dx, dy) from the pixel's top-left corner)
    for nb, d, (ox, oy) in ((p[:-2, 1:-1], 0, (0, 0)), (p[1:-1, 2:], 1, (1, 0)),
                             (p[2:, 1:-1], 2, (1, 1)), (p[1:-1, :-2], 3, (0, 1))):
        r, c = np.nonzero((inner != nb) & (inner > 0))
        parts.append((inner[r, c].astype(np.int64), c + ox, r + oy, np.full(r.size, d)))
    return tuple(np.concatenate([q[i] for q in parts]) for i in range(4))


def _successors(lab, x, y, d, shape):
    """Edges sorted by (label, start corner, direction), and the index of each one's successor."""
    nv = (shape[0] + 1) * (shape[1] + 1)
    w = shape[1] + 1
    key = (lab * nv + y * w + x) * 4 + d
    order = np.argsort(key, kind="stable")
    lab, x, y, d, key = lab[order], x[order], y[order], d[order], key[order]
    base = (lab * nv + (y + DIRECTIONS[d, 1]) * w + x + DIRECTIONS[d, 0]) * 4
    lo = np.searchsorted(key, base)
    j = np.minimum(lo + 1, len(key) - 1)
    # a pinch: two edges of the object leave the corner; take the right turn (towards the object)
    second = (lo + 1 < len(key)) & (key[j] < base + 4) & (d[j] == (d + 1) % 4)
    return lab, x, y, d, lo + second


def _rings(nxt: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """(ring id = its smallest edge index, position along the ring) of every edge of the permutation."""
    n = len(nxt)
    jumps = int(np.ceil(np.log2(max(longest, 2)))) + 1  # doubling pointers cross the longest ring
    cid, ptr = np.arange(n), nxt.copy()
    for _ in range(jumps):
        cid = np.minimum(cid, cid[ptr])
        ptr = ptr[ptr]
    # rank: steps from the ring's first edge (break each ring before its first edge, then list ranking)
    last = nxt == cid
    dist = np.where(last, 0, 1)
    ptr = np.where(last, np.arange(n), nxt)
    for _ in range(jumps):
        dist = dist + dist[ptr]
        ptr = ptr[ptr]
    return cid, -dist


def label_rings(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ring's corners: (coords (M, 2) x/y, ring index per corner, ring label, ring signed area)."""
    labels = np.asarray(labels)
    lab, x, y, d = boundary_edges(labels)
    if not lab.size:
        z = np.zeros(0, np.int64)
        return np.zeros((0, 2)), z, z, np.zeros(0)
    lab, x, y, d, nxt = _successors(lab, x, y, d, labels.shape)
    longest = int(np.bincount(lab).max())
    cid, rank = _rings(nxt, longest)
    order = np.lexsort((rank, cid))
    cid, x, y, d, lab = cid[order], x[order], y[order], d[order], lab[order]
    first = np.concatenate([[True], cid[1:] != cid[:-1]])
    starts = np.flatnonzero(first)
    ring = np.cumsum(first) - 1
    # the edge before each one on its ring (the ring's last for its first)
    ends = np.concatenate([starts[1:], [len(cid)]]) - 1
    prev = np.arange(len(cid)) - 1
    prev[starts] = ends
    corner = d != d[prev]
    xs, ys, rs = x[corner], y[corner], ring[corner]
    # signed area by the shoelace formula over each ring's corners
    rstart = np.flatnonzero(np.concatenate([[True], rs[1:] != rs[:-1]]))
    rend = np.concatenate([rstart[1:], [len(rs)]])
    nx = np.arange(len(rs)) + 1
    nx[rend - 1] = rstart
    area = 0.5 * np.add.reduceat(xs * ys[nx] - xs[nx] * ys, rstart)
    return np.stack([xs, ys], 1).astype(np.float64), rs, lab[starts], area


def label_polygons(labels: np.ndarray, tolerance: float = 0.0):
    """(labels, shapely geometries) of every object: a Polygon (shell and holes), or a MultiPolygon for an
    object in pieces; ``tolerance`` > 0 simplifies (Douglas–Peucker in pixels, topology kept)."""
    import shapely

    coords, ring, ring_label, area = label_rings(labels)
    if not len(ring_label):
        return np.zeros(0, np.int64), np.zeros(0, dtype=object)
    rings = shapely.linearrings(coords, indices=ring)
    shell = area > 0
    shells_per = np.bincount(ring_label, shell, minlength=int(ring_label.max()) + 1)
    simple = shells_per[ring_label] == 1
    # one shell: the shell first, then its holes, one polygon per label
    pick = np.flatnonzero(simple)
    order = pick[np.lexsort((~shell[pick], ring_label[pick]))]
    ids, group = np.unique(ring_label[order], return_inverse=True)
    geoms = shapely.polygons(rings[order], indices=group)
    if (~simple).any():
        ids, geoms = _with_pieces(ids, geoms, rings, ring_label, shell, simple)
    # a ring that touches itself at a corner (two holes meeting diagonally): split into valid parts
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if bad.size:
        geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    if tolerance > 0:
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
    return ids, geoms


def _polygonal(geom):
    """The polygonal part of a repaired geometry (a collection may also hold stray lines or points)."""
    import shapely

    if shapely.get_type_id(geom) in (3, 6):
        return geom
    polys = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) == 3]
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _with_pieces(ids, geoms, rings, ring_label, shell, simple):
    """Objects with several shells (labels in pieces): each hole goes to the shell that contains it."""
    import shapely

    extra_ids, extra = [], []
    for label in np.unique(ring_label[~simple]):
        mine = np.flatnonzero(ring_label == label)
        shells = [shapely.Polygon(rings[i]) for i in mine if shell[i]]
        holes = [rings[i] for i in mine if not shell[i]]
        parts = []
        for s in shells:
            inside = [h for h in holes if s.contains(shapely.Polygon(h).representative_point())]
            parts.append(shapely.Polygon(s.exterior, inside))
        extra_ids.append(label)
        extra.append(shapely.MultiPolygon(parts))
    all_ids = np.concatenate([ids, extra_ids]).astype(np.int64)
    all_geoms = np.concatenate([geoms, np.array(extra, dtype=object)])
    order = np.argsort(all_ids)
    return all_ids[order], all_geoms[order]


def geometry_json(geoms: np.ndarray, scale: float = 1.0, ox: float = 0.0, oy: float = 0.0) -> list[str]:
    """GeoJSON geometry text of each shapely (Multi)Polygon, every vertex (x + ox, y + oy) · scale: integers
    where they are whole (pixel corners), else 2 decimals, as QuPath writes them."""
    import shapely

    if not len(geoms):
        return []
    parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, part_of = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    flat, whole = _flat_coords(coords, scale, ox, oy)
    bounds = np.flatnonzero(np.diff(ring_of)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(coords)]])
    ring_text = _ring_text(flat, starts.tolist(), (ends - 1).tolist(), whole)  # shapely repeats the first vertex
    # rings → polygons → geometries (indices are sorted, every part has a shell)
    part_text: list[list[str]] = [[] for _ in range(len(parts))]
    for r, p in zip(ring_text, part_of.tolist()):
        part_text[p].append(r)
    geo_parts: list[list[str]] = [[] for _ in range(len(geoms))]
    for t, o in zip(part_text, owner.tolist()):
        geo_parts[o].append("[" + ",".join(t) + "]")
    kinds = shapely.get_type_id(geoms).tolist()
    return ['{"type":"Polygon","coordinates":' + p[0] + "}" if k == 3
            else '{"type":"MultiPolygon","coordinates":[' + ",".join(p) + "]}" for k, p in zip(kinds, geo_parts)]


def _flat_coords(coords: np.ndarray, scale: float, ox: float, oy: float) -> tuple[list, bool]:
    """(x, y, x, y, …) of vertices moved by (ox, oy) and scaled: integers where all are whole (pixel corners),
    else rounded to 2 decimals as QuPath writes them; and whether they are whole."""
    pts = (coords + [ox, oy]) * scale
    whole = bool(np.allclose(pts, np.round(pts), atol=1e-9))
    return (np.round(pts).astype(np.int64) if whole else np.round(pts, 2)).ravel().tolist(), whole


def _ring_text(flat: list, starts: list[int], ends: list[int], whole: bool) -> list[str]:
    """"[[x,y],…,[x0,y0]]" of each ring from the flat x, y list (the first vertex repeated to close it)."""
    pair = "[%d,%d]" if whole else "[%s,%s]"
    out = []
    for a, b in zip(starts, ends):
        closing = pair % (flat[2 * a], flat[2 * a + 1])
        out.append("[" + (pair + ",") * (b - a) % tuple(flat[2 * a:2 * b]) + closing + "]")
    return out


def outline_json(labels: np.ndarray, scale: float = 1.0, ox: float = 0.0, oy: float = 0.0
                 ) -> tuple[np.ndarray, list[str]]:
    """(labels, GeoJSON geometry text) of every object, as :func:`label_polygons` + :func:`geometry_json` give,
    written straight from the rings: objects of one shell whose rings do not touch themselves (nearly all)
    need no polygon objects; the rest go through shapely."""
    labels = np.asarray(labels)
    coords, ring, ring_label, area = label_rings(labels)
    if not len(ring_label):
        return np.zeros(0, np.int64), []
    shell = area > 0
    shells_per = np.bincount(ring_label, shell, minlength=int(ring_label.max()) + 1)
    # a ring through one corner twice (a diagonal pinch between two of its holes) is left to make_valid
    w = labels.shape[1] + 1
    key = ring * ((labels.shape[0] + 1) * w) + (coords[:, 1] * w + coords[:, 0]).astype(np.int64)
    srt = np.sort(key)
    twice = np.unique(srt[1:][srt[1:] == srt[:-1]] // ((labels.shape[0] + 1) * w))
    awkward = shells_per != 1
    awkward[ring_label[twice]] = True
    simple = ~awkward[ring_label]
    pick = np.flatnonzero(simple)
    order = pick[np.lexsort((~shell[pick], ring_label[pick]))]  # per label: shell first, then holes
    # corners of the chosen rings, in that order
    rstart = np.flatnonzero(np.concatenate([[True], ring[1:] != ring[:-1]]))
    rlen = np.diff(np.concatenate([rstart, [len(ring)]]))
    idx = np.repeat(rstart[order] - np.cumsum(np.concatenate([[0], rlen[order][:-1]])), rlen[order])
    idx = idx + np.arange(len(idx))
    flat, whole = _flat_coords(coords[idx], scale, ox, oy)
    ends = np.cumsum(rlen[order])
    rings_text = _ring_text(flat, (ends - rlen[order]).tolist(), ends.tolist(), whole)
    ids_simple, first = np.unique(ring_label[order], return_index=True)
    bounds = np.concatenate([first, [len(order)]]).tolist()
    texts = ['{"type":"Polygon","coordinates":[' + ",".join(rings_text[a:b]) + "]}"
             for a, b in zip(bounds[:-1], bounds[1:])]
    hard = np.flatnonzero(awkward)
    hard = hard[np.isin(hard, ring_label)]
    if not hard.size:
        return ids_simple.astype(np.int64), texts
    # each awkward object on its own box (known from its corners: pixel (r, c) has corners up to (c + 1, r + 1))
    corner_label = ring_label[ring]
    htext = []
    for label in hard.tolist():
        xy = coords[corner_label == label]
        (x0, y0), (x1, y1) = xy.min(0).astype(int), xy.max(0).astype(int)
        crop = np.where(labels[y0:y1, x0:x1] == label, label, 0)
        htext += geometry_json(label_polygons(crop)[1], scale, ox + x0, oy + y0)
    all_ids = np.concatenate([ids_simple, hard]).astype(np.int64)
    all_text = texts + htext
    o = np.argsort(all_ids, kind="stable")
    return all_ids[o], [all_text[i] for i in o.tolist()]
