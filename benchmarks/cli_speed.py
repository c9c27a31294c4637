"""The whole command as a user times it (issue 17): ``phenoseg segment he_2048.png --pixel-size 0.5 -o out``
with the default outputs, median of N runs, peak RSS of each; ``phenoseg --help``; a 256² image; and the
split (start-up, read, network, postprocessing, each output) measured in one process, plus GeoJSON bytes and
milliseconds per object.

    python benchmarks/cli_speed.py --tag after                       # this tree
    python benchmarks/cli_speed.py --tag before --src /tmp/before/src  # another checkout's sources

Results of several tags are kept side by side in results/cli_speed.json (one run per tag; the newest
replaces an older one of the same tag). The image is segment_speed.py's mosaic of real MoNuSeg tiles.
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
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def timed(cmd: list[str], env: dict, repeats: int) -> dict:
    runs = [run(cmd, env) for _ in range(repeats)]
    walls = [w for w, _ in runs]
    return {"median_s": statistics.median(walls), "runs_s": walls, "peak_rss_mb": max(r for _, r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default="after")
    ap.add_argument("--src", type=Path, help="sources to time instead of the installed phenoseg")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["default"])
    args = ap.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
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
        result: dict = {"image": {"size": list(mosaic.shape[:2]), "source": source, "megapixels": mp},
                        "repeats": args.repeats, "src": str(args.src) if args.src else "installed"}
        result["help"] = timed(cli + ["--help"], env, args.repeats)
        result["segment_256"] = timed(cli + ["segment", str(small), "--pixel-size", "0.5", "-o", str(tmp / "s"),
                                             "--quiet"], env, args.repeats)
        for backend in args.backends:
            extra = [] if backend == "default" else ["--backend", backend]
            whole = timed(cli + ["segment", str(big), "--pixel-size", "0.5", "-o", str(tmp / "o"), "--quiet", *extra],
                          env, args.repeats)
            whole["s_per_mp"] = whole["median_s"] / mp
            labels_only = timed(cli + ["segment", str(big), "--pixel-size", "0.5", "-o", str(tmp / "l"),
                                       "--outputs", "labels", "--quiet", *extra], env, args.repeats)
            splits = []
            for i in range(min(3, args.repeats)):
                out = tmp / f"split{i}"
                out.mkdir()
                text = subprocess.run(py + ["-c", SPLIT, str(big), str(out), backend], env=env, check=True,
                                      capture_output=True, text=True).stdout
                splits.append(json.loads(text.strip().splitlines()[-1]))
            split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
            geo = tmp / "o" / "he_2048.geojson"
            n = max(int(split["objects"]), 1)
            split["geojson_bytes_per_object"] = geo.stat().st_size / n
            split["geojson_ms_per_object"] = 1000 * split.get("geojson_s", float("nan")) / n
            result[f"whole_{backend}"] = whole
            result[f"labels_only_{backend}"] = labels_only
            result[f"split_{backend}"] = split
            print(backend, f"whole {whole['median_s']:.2f} s ({whole['s_per_mp']:.2f} s/MP), "
                  f"labels only {labels_only['median_s']:.2f} s, RSS {whole['peak_rss_mb']:.0f} MB", flush=True)
            print(json.dumps(split, indent=1), flush=True)
    path = RESULTS / "cli_speed.json"
    old = json.loads(path.read_text()) if path.exists() else {"benchmark": "cli_speed", "runs": {}}
    old.setdefault("runs", {})[args.tag] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
                                            **result}
    path.write_text(json.dumps(old, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
