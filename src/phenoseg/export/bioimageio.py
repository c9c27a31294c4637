"""BioImage.IO model package (format 0.5): rdf.yaml + whole-pipeline TorchScript (+ state dict), test
tensors, cover, documentation. Laid out as QuPath's InstanSeg extension expects (rdf.yaml beside
``instanseg.pt``)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.export.torchscript import InstanSegPipeline, export_torchscript
from phenoseg.models.instanseg import InstanSegNet

INSTANSEG_CITATION = {
    "text": "Goldsborough T. et al. InstanSeg: an embedding-based instance segmentation algorithm optimized "
            "for accurate, efficient and portable cell segmentation. arXiv 2408.15954 (2024)",
    "url": "https://arxiv.org/abs/2408.15954",
}
ARCHITECTURE_SOURCE = '''"""Architecture for the pytorch_state_dict weights (needs phenoseg installed)."""
from phenoseg.export.torchscript import InstanSegPipeline
from phenoseg.models.config import ModelConfig
from phenoseg.models.instanseg import build_instanseg


class PhenosegPipeline(InstanSegPipeline):
    def __init__(self, **config):
        super().__init__(build_instanseg(ModelConfig.from_dict(config)))
'''


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def licence_id(text: str) -> str:
    t = (text or "").upper()
    if "NC-SA" in t or "NC SA" in t:
        return "CC-BY-NC-SA-4.0"
    if "CC0" in t:
        return "CC0-1.0"
    return "Apache-2.0"


def _test_input(net: InstanSegNet) -> np.ndarray:
    """A synthetic (1, C, 128, 128) test image with the model's channel count (every non-RGB channel a
    nuclear fluorescence picture of the same nuclei, with its own noise)."""
    from phenoseg.synthetic import render_image, synthetic_labels

    lab = synthetic_labels((128, 128), 24, seed=1, radius=(4, 8))
    n = net.config.in_channels
    if n == 3 and net.config.modality == "brightfield":
        return render_image(lab, "brightfield", seed=1)[None].astype(np.float32)
    return np.concatenate([render_image(lab, "fluorescence", seed=1 + c) for c in range(n)])[None].astype(np.float32)


def build_package(net: InstanSegNet, folder: Path, licence: str = "Apache-2.0") -> Path:
    """Write the package files into ``folder``; returns the rdf.yaml path."""
    import yaml

    cfg = net.config
    folder.mkdir(parents=True, exist_ok=True)
    ts = export_torchscript(net, folder / "instanseg.pt")
    state = folder / "weights_state_dict.pt"
    torch.save(InstanSegPipeline(net).state_dict(), state)
    arch = folder / "phenoseg_architecture.py"
    arch.write_text(ARCHITECTURE_SOURCE)
    x = _test_input(net)
    y = torch.jit.load(str(ts))(torch.from_numpy(x)).numpy()
    np.save(folder / "test_input.npy", x)
    np.save(folder / "test_output.npy", y)
    from phenoseg.io.overlay import overlay, write_png

    write_png(folder / "cover.png", overlay(x[0].astype(np.uint16 if x.max() > 255 else np.uint8), y[0, 0]))
    doc = folder / "README.md"
    doc.write_text(
        f"# {cfg.name}\n\n{cfg.description}\n\nInstanSeg-style nucleus segmentation exported by phenoseg. Input: "
        f"{', '.join(cfg.channel_names)} at {cfg.pixel_size_um} µm/px; output: instance labels "
        f"({', '.join(cfg.targets)}). The TorchScript file normalises its input (percentiles "
        f"{cfg.norm_percentiles[0]} / {cfg.norm_percentiles[1]}) and runs the whole postprocessing.\n\n"
        f"Training data and their licences: {', '.join(cfg.training.get('datasets', [])) or 'see the model card'}.\n"
    )
    channel = ({"type": "channel", "channel_names": list(cfg.channel_names)})
    rdf = {
        "type": "model",
        "format_version": "0.5.4",
        "name": f"phenoseg {cfg.name.replace('_', ' ')}",
        "description": cfg.description or f"phenoseg {cfg.name}",
        "authors": [{"name": "phenoseg developers"}],
        "cite": [INSTANSEG_CITATION],
        "license": licence,
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": ["instance-segmentation", "nuclei", "instanseg", "phenoseg", cfg.modality],
        "inputs": [{
            "id": "raw",
            "description": "image at the model's pixel size",
            "axes": [
                {"type": "batch"},
                channel,
                {"type": "space", "id": "y", "size": {"min": 16, "step": 1}, "scale": cfg.pixel_size_um,
                 "unit": "micrometer"},
                {"type": "space", "id": "x", "size": {"min": 16, "step": 1}, "scale": cfg.pixel_size_um,
                 "unit": "micrometer"},
            ],
            "test_tensor": {"source": "test_input.npy", "sha256": _sha256(folder / "test_input.npy")},
            "preprocessing": [{"id": "scale_range", "kwargs": {
                "axes": ["y", "x"], "min_percentile": cfg.norm_percentiles[0],
                "max_percentile": cfg.norm_percentiles[1]}}],
        }],
        "outputs": [{
            "id": "instance_segmentation",
            "description": "instance labels, 0 = background",
            "axes": [
                {"type": "batch"},
                {"type": "channel", "channel_names": list(cfg.targets)},
                {"type": "space", "id": "y", "size": {"tensor_id": "raw", "axis_id": "y"},
                 "scale": cfg.pixel_size_um, "unit": "micrometer"},
                {"type": "space", "id": "x", "size": {"tensor_id": "raw", "axis_id": "x"},
                 "scale": cfg.pixel_size_um, "unit": "micrometer"},
            ],
            "test_tensor": {"source": "test_output.npy", "sha256": _sha256(folder / "test_output.npy")},
        }],
        "weights": {
            "torchscript": {"source": "instanseg.pt", "sha256": _sha256(ts),
                            "pytorch_version": torch.__version__.split("+")[0]},
            "pytorch_state_dict": {
                "source": state.name, "sha256": _sha256(state),
                "architecture": {"source": arch.name, "sha256": _sha256(arch), "callable": "PhenosegPipeline",
                                 "kwargs": cfg.to_dict()},
                "pytorch_version": torch.__version__.split("+")[0],
            },
        },
        "config": {"phenoseg": {"model": cfg.name, "pixel_size_um": cfg.pixel_size_um}},
    }
    rdf_path = folder / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
    return rdf_path


def validate(rdf_path: Path) -> str:
    """Validate with bioimageio.spec; returns the status ('valid-format', 'passed', ...) or raises."""
    try:
        from bioimageio.spec import load_description
    except ImportError as exc:
        raise PhenosegError("validation needs bioimageio.spec: pip install 'phenoseg[bioimageio]'") from exc
    descr = load_description(rdf_path, perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status == "failed":
        errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors]
        raise PhenosegError("BioImage.IO validation failed: " + "; ".join(errors))
    return summary.status


def export_bioimageio(net: InstanSegNet, out: str | Path, licence: str = "Apache-2.0") -> Path:
    """Write a package folder, or a .zip when ``out`` ends with .zip."""
    out = Path(out)
    if out.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            build_package(net, Path(tmp), licence)
            partial = out.with_name(f".{out.name}.tmp")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(Path(tmp).iterdir()):
                    z.write(f, f.name)
            partial.replace(out)
        return out
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    build_package(net, out, licence)
    return out
