"""Outlines of all objects at once: exact pixel-edge polygons, holes, pinches, pieces, GeoJSON text."""

import json

import numpy as np
import pytest
import shapely
import shapely.affinity

from phenoseg.io.contours import geometry_json, label_polygons, outline_json


def _pixels_inside(geom, shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    return shapely.contains_xy(geom, xx, yy)


def test_outlines_enclose_exactly_the_pixels_of_random_labels():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(40):
        # salt-and-pepper labels: every kind of diagonal pinch, hole and piece occurs
        lab = (rng.random((20, 20)) < 0.5) * rng.integers(1, 5, (20, 20))
        ids, geoms = label_polygons(lab)
        assert ids.tolist() == sorted(set(np.unique(lab).tolist()) - {0})
        for i, g in zip(ids, geoms):
            mask = lab == i
            assert g.is_valid
            assert g.area == pytest.approx(mask.sum(), abs=1e-9)
            assert (_pixels_inside(g, lab.shape) == mask).all()
            checked += 1
    assert checked > 100


def test_hole_pinch_and_pieces():
    lab = np.zeros((12, 12), np.int32)
    lab[1:6, 1:6] = 1
    lab[3, 3] = 0                      # a hole
    lab[6, 6] = 1                      # touches the square at a corner only: a second piece
    lab[8:11, 1:4] = 2
    lab[9, 1] = 0                      # background reaching in, pinched off at a corner: a hole touching the shell
    lab[10, 2] = 0
    lab[8:10, 8:11] = 3
    lab[11, 9:11] = 3                  # two pieces apart
    ids, geoms = label_polygons(lab)
    assert ids.tolist() == [1, 2, 3]
    one, two, three = geoms
    assert one.geom_type == "MultiPolygon" and len(one.geoms) == 2 and one.area == 25 - 1 + 1
    assert sorted(len(p.interiors) for p in one.geoms) == [0, 1]
    assert two.is_valid and two.area == 9 - 2
    assert three.geom_type == "MultiPolygon" and three.area == 6 + 2


def test_straight_runs_become_corners():
    lab = np.zeros((10, 10), np.int32)
    lab[2:7, 3:9] = 5
    _, (g,) = label_polygons(lab)
    assert len(g.exterior.coords) == 5  # 4 corners + closing vertex
    assert g.bounds == (3.0, 2.0, 9.0, 7.0)


def test_geojson_text_is_integer_corners_or_scaled_decimals():
    lab = np.zeros((8, 8), np.int32)
    lab[1:3, 1:4] = 1
    lab[5:7, 5:7] = 2
    lab[5, 1] = 3
    lab[7, 3] = 3
    _, geoms = label_polygons(lab)
    texts = geometry_json(geoms, ox=10, oy=20)
    parsed = [json.loads(t) for t in texts]
    assert parsed[0]["type"] == "Polygon"
    assert parsed[0]["coordinates"][0][0] == [11, 21]
    assert all(isinstance(v, int) for pt in parsed[0]["coordinates"][0] for v in pt)
    assert parsed[2]["type"] == "MultiPolygon" and len(parsed[2]["coordinates"]) == 2
    back = shapely.geometry.shape(parsed[1])
    assert back.area == 4 and back.bounds == (15, 25, 17, 27)
    scaled = json.loads(geometry_json(geoms[:1], scale=0.25)[0])
    assert scaled["coordinates"][0][0] == [0.25, 0.25]


def test_empty_and_simplified():
    ids, geoms = label_polygons(np.zeros((5, 5), np.int32))
    assert len(ids) == 0 and geometry_json(geoms) == []
    yy, xx = np.mgrid[:40, :40]
    disc = ((yy - 20) ** 2 + (xx - 20) ** 2 < 15**2).astype(np.int32)
    _, (exact,) = label_polygons(disc)
    _, (thin,) = label_polygons(disc, tolerance=0.5)
    assert len(thin.exterior.coords) < len(exact.exterior.coords)
    assert thin.intersection(exact).area / thin.union(exact).area > 0.97


def test_outline_json_is_the_shapely_route_text():
    rng = np.random.default_rng(3)
    for _ in range(30):
        lab = (rng.random((18, 18)) < 0.55) * rng.integers(1, 5, (18, 18))
        for scale, ox, oy in ((1.0, 0, 0), (2.5, 3, 1)):
            ids, texts = outline_json(lab, scale, ox, oy)
            ref_ids, geoms = label_polygons(lab)
            assert ids.tolist() == ref_ids.tolist()
            for text, geom in zip(texts, geoms):
                got = shapely.geometry.shape(json.loads(text))
                assert got.is_valid
                assert got.equals(shapely.affinity.scale(shapely.affinity.translate(geom, ox, oy), scale, scale,
                                                         origin=(0, 0)))
