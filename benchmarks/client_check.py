"""phenoseg's outputs opened by the Python clients users read them with (issue 18): geopandas (QuPath
GeoJSON), scanpy and spatialdata (AnnData), each on the bundled H&E example segmented by the CLI. Run in an
environment that has them (``tools/client_check.sh`` makes one); writes results/client_check.json with each
client's version and exits non-zero when a check fails.

    python benchmarks/client_check.py
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "he_dsb2018.tif"


def check_geopandas(out: Path, labels: np.ndarray) -> dict:
    import geopandas

    frame = geopandas.read_file(out / "he_dsb2018.geojson")
    n = len(np.unique(labels)) - 1
    assert len(frame) == n, f"{len(frame)} features for {n} objects"
    assert frame.geometry.is_valid.all(), "invalid geometries"
    assert set(frame.geom_type) == {"Polygon"}, f"geometry types {set(frame.geom_type)}"
    assert (frame["objectType"] == "detection").all()
    return {"features": len(frame), "all_valid": True, "area_px_median": float(frame.geometry.area.median())}


def check_scanpy(out: Path) -> dict:
    import scanpy as sc

    adata = sc.read_h5ad(out / "he_dsb2018.h5ad")
    assert adata.n_obs > 10 and "spatial" in adata.obsm
    sc.pp.scale(adata)
    sc.tl.pca(adata, n_comps=min(2, adata.n_vars - 1))
    sc.pp.neighbors(adata, n_neighbors=10)
    return {"n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars), "neighbors": "connectivities" in adata.obsp}


def check_spatialdata(out: Path, labels: np.ndarray) -> dict:
    import anndata
    import spatialdata
    from spatialdata.models import Labels2DModel, TableModel

    adata = anndata.read_h5ad(out / "he_dsb2018.h5ad")
    TableModel.validate(adata)
    attrs = adata.uns["spatialdata_attrs"]
    region = attrs["region"]
    sdata = spatialdata.SpatialData(labels={region: Labels2DModel.parse(labels.astype(np.uint32), dims=("y", "x"))},
                                    tables={"table": adata})
    path = out / "check.zarr"
    sdata.write(path)
    back = spatialdata.read_zarr(path)
    table = back.tables["table"]
    ids = set(np.unique(np.asarray(back.labels[region]))) - {0}
    assert set(table.obs[attrs["instance_key"]].astype(int)) <= ids, "table rows name labels not in the image"
    return {"region": region, "rows": int(table.n_obs), "labels": len(ids)}


def check_spatialdata_cells(tmp: Path) -> dict:
    """A cell table (nucleus, cytoplasm, membrane, cell compartments) from ``phenoseg measure``."""
    import anndata
    from spatialdata.models import TableModel

    from phenoseg.synthetic.cells import nuclei_and_cells, render_two_channel

    nuclei, cells = nuclei_and_cells((160, 160), 25, seed=4)
    tifffile.imwrite(tmp / "panel.tif", render_two_channel(nuclei, cells, seed=4))
    tifffile.imwrite(tmp / "n.tif", nuclei.astype(np.uint32))
    tifffile.imwrite(tmp / "c.tif", cells.astype(np.uint32))
    subprocess.run([sys.executable, "-m", "phenoseg", "measure", str(tmp / "panel.tif"), "--nuclei", str(tmp / "n.tif"),
                    "--cells", str(tmp / "c.tif"), "--pixel-size", "0.5", "-o", str(tmp / "m"), "--outputs",
                    "anndata", "--quiet"], check=True)
    adata = anndata.read_h5ad(next((tmp / "m").glob("*.h5ad")))
    TableModel.validate(adata)
    assert any(k.startswith("cytoplasm_") for k in adata.layers), f"layers {list(adata.layers)}"
    return {"rows": int(adata.n_obs), "layers": sorted(adata.layers)}


def main() -> int:
    results, failed = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        subprocess.run([sys.executable, "-m", "phenoseg", "segment", str(EXAMPLE), "-o", str(out), "--outputs",
                        "labels,geojson,csv,anndata", "--quiet"], check=True)
        labels = tifffile.imread(out / "he_dsb2018_nuclei.tif")
        for name, check in (("geopandas", lambda: check_geopandas(out, labels)), ("scanpy", lambda: check_scanpy(out)),
                            ("spatialdata", lambda: check_spatialdata(out, labels)),
                            ("spatialdata cells", lambda: check_spatialdata_cells(Path(tmp)))):
            try:
                results[name] = {"version": md.version(name.split()[0]), "passed": True, **check()}
            except Exception as exc:  # a client that cannot read the output is the finding
                results[name] = {"version": md.version(name.split()[0]), "passed": False, "error": repr(exc),
                                 "traceback": traceback.format_exc()[-2000:]}
                failed.append(name)
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "traceback"}), flush=True)
    write_result("client_check", {"example": EXAMPLE.name, "clients": results})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
