"""The network under ONNX Runtime versus torch (eager and frozen channels-last TorchScript) on the CPU.

Same weights, same input; reports seconds per megapixel (median) and the largest output difference.
Run: `python benchmarks/onnx_speed.py [--model NAME] [--size 1024]` → results/onnx_speed.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import median_time, write_result

from phenoseg.inference.optimise import frozen_network
from phenoseg.models.zoo import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="fluorescence_nuclei")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    net = load_model(args.model).eval()
    c = net.config.in_channels
    x = torch.rand(1, c, args.size, args.size)
    frozen = frozen_network(net)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(net, (torch.rand(1, c, 256, 256),), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        with torch.no_grad():
            ref = net(x).numpy()
            t_eager, _ = median_time(lambda: net(x), args.repeats)
            t_frozen, _ = median_time(lambda: frozen(x), args.repeats)
        t_ort, _ = median_time(lambda: sess.run(None, {"x": xn}), args.repeats)
        diff = float(np.abs(sess.run(None, {"x": xn})[0] - ref).max())
    mp = args.size**2 / 1e6
    payload = {
        "model": args.model, "size": args.size, "threads": args.threads, "onnxruntime": ort.__version__,
        "s_per_mp": {"torch_eager": round(t_eager / mp, 3), "torch_frozen_channels_last": round(t_frozen / mp, 3),
                     "onnxruntime": round(t_ort / mp, 3)},
        "onnx_vs_frozen_speedup": round(t_frozen / t_ort, 2),
        "max_abs_output_difference": diff,
    }
    print(payload)
    print("wrote", write_result("onnx_speed", payload))


if __name__ == "__main__":
    main()
