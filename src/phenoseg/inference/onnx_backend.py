"""ONNX Runtime as a CPU backend for the network (optional: `pip install "phenoseg[onnx]"`).

Measured ~3× faster than torch on 2 CPU cores at outputs equal to ~1e-5 (benchmarks/onnx_speed.py);
the postprocessing stays in torch.
"""

from __future__ import annotations

import io

import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.instanseg import InstanSegNet


def onnxruntime_available() -> bool:
    """Whether onnxruntime (and onnx for the export) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxModule:
    """Callable like a torch module of one input and one output, run by ONNX Runtime: ``example`` fixes the
    input's layout, ``dynamic`` names its axes that vary (input axis → name; the output's follow by index)."""

    def __init__(self, net: torch.nn.Module, example: torch.Tensor, dynamic: dict[int, str],
                 out_dynamic: dict[int, str] | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PhenosegError("backend=onnx needs onnxruntime: pip install 'phenoseg[onnx]'") from exc
        buf = io.BytesIO()
        out_axes = dynamic if out_dynamic is None else out_dynamic
        torch.onnx.export(net.eval(), (example,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": dynamic, "y": out_axes}, opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"x": x.detach().cpu().numpy().astype("float32", copy=False)})[0]
        return torch.from_numpy(out)


class OnnxNetwork(OnnxModule):
    """A segmentation network under ONNX Runtime: (B, C, H, W) float tensor → raw maps."""

    def __init__(self, net: InstanSegNet, threads: int | None = None) -> None:
        any_channels = net.config.adaptor is not None  # ChannelNet: the channel count varies too
        c = 2 if any_channels else net.config.in_channels
        axes = {0: "b", 1: "c", 2: "h", 3: "w"} if any_channels else {0: "b", 2: "h", 3: "w"}
        super().__init__(net, torch.zeros(1, c, 64, 64), axes, {0: "b", 2: "h", 3: "w"}, threads)
