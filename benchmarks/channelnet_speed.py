"""Speed of the ChannelNet nuclei + cells model on this machine (issue 14):

- images per second for 256² two-channel fields (TissueNet-like; in process, whole `segment` call), and the
  whole command on a folder of them (outputs included);
- seconds per megapixel for a 1024² 20-channel image;
- how the cost grows with the channel count (network and whole call, 512² fields, 1 to 40 channels).

    python benchmarks/channelnet_speed.py [--model fluorescence_nuclei_and_cells]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, write_result  # noqa: E402

from phenoseg.inference.runner import network_output  # noqa: E402
from phenoseg.inference.segmenter import Segmenter  # noqa: E402
from phenoseg.synthetic.multiplex import render_multiplex  # noqa: E402
from phenoseg.synthetic.nuclei import synthetic_labels  # noqa: E402

PX = 0.5


def field(size: int, channels: int, seed: int) -> np.ndarray:
    nuclei = synthetic_labels((size, size), int(size * size / 900), seed=seed, radius=(4, 8))
    return render_multiplex(nuclei, np.random.default_rng(seed), n_channels=channels).image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fluorescence_nuclei_and_cells")
    ap.add_argument("--fields", type=int, default=40)
    args = ap.parse_args()
    seg = Segmenter(args.model, device="cpu")
    net = seg.load(args.model)
    out: dict = {"model": args.model}

    small = [field(256, 2, i) for i in range(args.fields)]
    seg.segment(small[0], PX)
    t = time.perf_counter()
    for img in small:
        seg.segment(img, PX)
    dt = time.perf_counter() - t
    out["fields_256_two_channel"] = {"images": len(small), "seconds": round(dt, 2),
                                     "images_per_s": round(len(small) / dt, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, img in enumerate(small):
            tifffile.imwrite(folder / f"f{i:03d}.tif", img.astype(np.uint16),
                             metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "CD45"]}},
                             resolution=(1e4 / PX, 1e4 / PX), resolutionunit="CENTIMETER")
        cmd = [sys.executable, "-m", "phenoseg", "segment", str(folder), "-o", str(Path(tmp) / "out"), "--model",
               args.model, "--outputs", "labels,geojson,csv", "--quiet"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        dt = time.perf_counter() - t
        out["command_folder_256_two_channel"] = {"images": len(small), "seconds": round(dt, 2),
                                                 "images_per_s": round(len(small) / dt, 2),
                                                 "outputs": "labels, geojson, csv", "command": " ".join(cmd[1:])}

    big = field(1024, 20, 99)
    med, times = median_time(lambda: seg.segment(big, PX), repeats=3)
    out["image_1024_20_channels"] = {"seconds_median": round(med, 2), "s_per_mp": round(med / 1.048576, 2),
                                     "times": [round(x, 2) for x in times]}
    from phenoseg.inference.onnx_backend import onnxruntime_available

    if onnxruntime_available():
        fast = Segmenter(args.model, device="cpu", backend="onnx")
        fast.segment(big[:, :256, :256], PX)
        med, times = median_time(lambda: fast.segment(big, PX), repeats=3, warmup=0)
        out["image_1024_20_channels_onnx"] = {"seconds_median": round(med, 2), "s_per_mp": round(med / 1.048576, 2),
                                              "times": [round(x, 2) for x in times]}

    growth = {}
    for c in (1, 2, 5, 10, 20, 40):
        img = field(512, c, 7)
        data = np.clip(img / np.percentile(img, 99.9), 0, 2).astype(np.float32)
        n_med, _ = median_time(lambda data=data: network_output(net, data), repeats=3)
        w_med, _ = median_time(lambda img=img: seg.segment(img, PX), repeats=3)
        growth[str(c)] = {"network_s": round(n_med, 3), "segment_s": round(w_med, 3)}
    base = growth["1"]["network_s"]
    for c, v in growth.items():
        v["network_vs_1_channel"] = round(v["network_s"] / base, 2)
        if int(c) > 1:  # linear growth: the cost of each channel beyond the first stays flat
            v["network_s_per_added_channel"] = round((v["network_s"] - base) / (int(c) - 1), 3)
    out["cost_vs_channels_512"] = growth
    print(write_result("channelnet_speed", out))
    print(out)


if __name__ == "__main__":
    main()
