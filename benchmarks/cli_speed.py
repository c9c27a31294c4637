"""The whole command as a user times it (issue 17): ``phenoseg segment he_2048.png --pixel-size 0.5 -o out``
with the default outputs, median of N runs, peak RSS of each; ``phenoseg --help``; a 256² image; and the
split (start-up, read, network, postprocessing, each output) measured in one process, plus GeoJSON bytes and
milliseconds per object.

    python benchmarks/cli_speed.py                                   # the installed phenoseg
    git worktree add /tmp/before REV
    python benchmarks/cli_speed.py --tree before=/tmp/before/src after=installed --backends default onnx

Trees are timed interleaved (each round runs every command of every tree), so their medians and ratios are
side by side. The image is segment_speed.py's mosaic of real MoNuSeg tiles.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402
from segment_speed import he_mosaic  # noqa: E402

SPLIT = r"""
import json, sys, time
t0 = time.perf_counter()
from phenoseg.inference.segmenter import Segmenter, to_image
from phenoseg.outputs.image import ObjectSet, write_image_outputs
t1 = time.perf_counter()
kw = {} if sys.argv[3] == "default" else {"backend": sys.argv[3]}
seg = Segmenter("brightfield_nuclei", device="cpu", **kw)
t2 = time.perf_counter()
image = to_image(sys.argv[1], None)
t3 = time.perf_counter()
result = seg.segment(image, 0.5)
t4 = time.perf_counter()
stages = {}
kinds = ["labels", "geojson", "csv", "overlay", "report"]
objects = ObjectSet(result.labels, result.scores, result.model, result.pixel_size_um, 0.0, [])
try:
    write_image_outputs(objects, image, "he", __import__("pathlib").Path(sys.argv[2]), kinds, stage_times=stages)
except TypeError:  # a tree from before stage_times
    write_image_outputs(objects, image, "he", __import__("pathlib").Path(sys.argv[2]), kinds)
t5 = time.perf_counter()
out = {"imports_s": t1 - t0, "model_setup_s": t2 - t1, "read_s": t3 - t2, "segment_s": t4 - t3,
       "outputs_s": t5 - t4, "objects": int(len(result.tables["nuclei"])), **result.timings, **stages}
print(json.dumps({k: v for k, v in out.items() if isinstance(v, (int, float))}))
"""


def run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def summary(runs: list[tuple[float, float]]) -> dict:
    walls = [w for w, _ in runs]
    return {"median_s": statistics.median(walls), "runs_s": walls, "peak_rss_mb": max(r for _, r in runs)}


def split(py: list[str], env: dict, image: Path, out: Path, backend: str) -> dict:
    """The stages of one run, in one process."""
    out.mkdir(parents=True)
    text = subprocess.run(py + ["-c", SPLIT, str(image), str(out), backend], env=env, check=True,
                          capture_output=True, text=True).stdout
    return json.loads(text.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", nargs="+", default=["after=installed"],
                    help="NAME=SRC: sources to time (SRC a src/ folder, or 'installed'); interleaved")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["default"])
    args = ap.parse_args()
    trees = {}
    for item in args.tree:
        name, _, src = item.partition("=")
        env = dict(os.environ)
        if src and src != "installed":
            env["PYTHONPATH"] = str(Path(src).resolve())
        trees[name] = (src or "installed", env)
    py = [sys.executable]
    cli = py + ["-m", "phenoseg"]
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mosaic, source = he_mosaic()
        big, small = tmp / "he_2048.png", tmp / "he_256.png"
        Image.fromarray(mosaic).save(big)
        Image.fromarray(np.ascontiguousarray(mosaic[:256, :256])).save(small)
        mp = mosaic.shape[0] * mosaic.shape[1] / 1e6
        def commands(t: str) -> dict[str, list[str]]:
            out = {"help": ["--help"],
                   "segment_256": ["segment", str(small), "--pixel-size", "0.5", "-o", str(tmp / t / "s"), "--quiet"]}
            for b in args.backends:
                extra = [] if b == "default" else ["--backend", b]
                out[f"whole_{b}"] = ["segment", str(big), "--pixel-size", "0.5", "-o", str(tmp / t / f"o_{b}"),
                                     "--quiet", *extra]
                out[f"labels_only_{b}"] = ["segment", str(big), "--pixel-size", "0.5", "-o", str(tmp / t / "l"),
                                           "--outputs", "labels", "--quiet", *extra]
            return out

        names = list(commands("x"))
        raw = {t: {c: [] for c in names} for t in trees}
        splits = {t: {b: [] for b in args.backends} for t in trees}
        for r in range(args.repeats):  # interleaved: every tree in every round
            for t, (_, env) in trees.items():
                for c, argv in commands(t).items():
                    raw[t][c].append(run(cli + argv, env))
                for b in args.backends:
                    if r < 3:
                        splits[t][b].append(split(py, env, big, tmp / f"split_{t}_{b}_{r}", b))
            print(f"round {r + 1}/{args.repeats} done", flush=True)
        result: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
                        "image": {"size": list(mosaic.shape[:2]), "source": source, "megapixels": mp},
                        "repeats": args.repeats, "interleaved": list(trees), "trees": {}}
        for t, (src, _) in trees.items():
            out = {"src": src}
            for c in names:
                out[c] = summary(raw[t][c])
            for b in args.backends:
                out[f"whole_{b}"]["s_per_mp"] = out[f"whole_{b}"]["median_s"] / mp
                sp = {k: statistics.median(x[k] for x in splits[t][b]) for k in splits[t][b][0]}
                n = max(int(sp["objects"]), 1)
                geo = tmp / t / f"o_{b}" / "he_2048.geojson"
                sp["geojson_bytes_per_object"] = geo.stat().st_size / n
                if "geojson_s" in sp:
                    sp["geojson_ms_per_object"] = 1000 * sp["geojson_s"] / n
                out[f"split_{b}"] = sp
                print(t, b, f"whole {out[f'whole_{b}']['median_s']:.2f} s ({out[f'whole_{b}']['s_per_mp']:.2f} s/MP),"
                      f" labels only {out[f'labels_only_{b}']['median_s']:.2f} s,"
                      f" RSS {out[f'whole_{b}']['peak_rss_mb']:.0f} MB", flush=True)
                print(json.dumps({k: round(v, 4) for k, v in sp.items()}), flush=True)
            result["trees"][t] = out
        if len(trees) > 1:
            first, *rest = list(trees)
            med = {t: {c: result["trees"][t][c]["median_s"] for c in names} for t in trees}
            result["ratios_vs_" + first] = {t: {c: med[t][c] / med[first][c] for c in names} for t in rest}
    path = RESULTS / "cli_speed.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
