"""ONNX Runtime as the CPU backend for the network (the default where installed, a core dependency).

Measured ~3× faster than torch on 2 CPU cores at outputs equal to ~1e-5 (benchmarks/onnx_speed.py);
the postprocessing stays in torch. An export is kept in the user's cache folder (``$PHENOSEG_CACHE``, else
``$XDG_CACHE_HOME/phenoseg`` or ``~/.cache/phenoseg``), keyed by a hash of the weights, the configuration,
the input layout and the torch version, so later runs skip it; an unwritable cache only costs the export.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
from pathlib import Path

import torch

from phenoseg.errors import PhenosegError
from phenoseg.models.instanseg import InstanSegNet


def onnxruntime_available() -> bool:
    """Whether onnxruntime and onnx (for the export) are installed (found, not imported: that costs ~1 s)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def cache_dir() -> Path:
    """Where exported ONNX models are kept between runs."""
    root = os.environ.get("PHENOSEG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "phenoseg")
    return Path(root) / "onnx"


def export_key(net: torch.nn.Module, example: torch.Tensor, dynamic: dict, out_dynamic: dict) -> str:
    """A hash of everything the exported graph depends on."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    config = getattr(net, "config", None)
    h.update(repr(config.to_dict() if hasattr(config, "to_dict") else config).encode())
    h.update(repr((type(net).__qualname__, tuple(example.shape), sorted(dynamic.items()),
                   sorted(out_dynamic.items()), torch.__version__)).encode())
    return h.hexdigest()[:32]


def exported(net: torch.nn.Module, example: torch.Tensor, dynamic: dict, out_dynamic: dict) -> bytes:
    """The ONNX bytes of ``net``: from the cache when there, else exported (and cached when possible)."""
    path = cache_dir() / f"{export_key(net, example, dynamic, out_dynamic)}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    buf = io.BytesIO()
    torch.onnx.export(net.eval(), (example,), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": dynamic, "y": out_dynamic}, opset_version=17, dynamo=False)
    data = buf.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass
    return data


class OnnxModule:
    """Callable like a torch module of one input and one output, run by ONNX Runtime: ``example`` fixes the
    input's layout, ``dynamic`` names its axes that vary (input axis → name; the output's follow by index)."""

    def __init__(self, net: torch.nn.Module, example: torch.Tensor, dynamic: dict[int, str],
                 out_dynamic: dict[int, str] | None = None, threads: int | None = None, arena: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PhenosegError("backend=onnx needs onnxruntime and onnx: pip install onnxruntime onnx") from exc
        data = exported(net.eval(), example, dynamic, dynamic if out_dynamic is None else out_dynamic)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = arena
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"x": x.detach().cpu().numpy().astype("float32", copy=False)})[0]
        return torch.from_numpy(out)


class OnnxNetwork(OnnxModule):
    """A segmentation network under ONNX Runtime: (B, C, H, W) float tensor → raw maps."""

    def __init__(self, net: InstanSegNet, threads: int | None = None) -> None:
        any_channels = net.config.adaptor is not None  # ChannelNet: the channel count varies too
        c = 2 if any_channels else net.config.in_channels
        axes = {0: "b", 1: "c", 2: "h", 3: "w"} if any_channels else {0: "b", 2: "h", 3: "w"}
        # no memory arena: it keeps its peak (a 2048² H&E: 2.2 → 1.2 GB RSS untiled)
        super().__init__(net, torch.zeros(1, c, 64, 64), axes, {0: "b", 2: "h", 3: "w"}, threads, arena=False)
