"""BioImage.IO model package (format 0.5): rdf.yaml + whole-pipeline TorchScript, test and sample tensors
(crops of the bundled examples), cover, documentation with the validation scores. Laid out as QuPath's
InstanSeg extension expects (rdf.yaml beside ``instanseg.pt``).

TorchScript only: a ``pytorch_state_dict`` entry would need phenoseg importable wherever it runs (its
architecture is phenoseg's code), which bioimage.io's runners do not have."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from phenoseg.errors import PhenosegError
from phenoseg.export.torchscript import export_torchscript
from phenoseg.models.instanseg import InstanSegNet

INSTANSEG_CITATION = {
    "text": "Goldsborough T. et al. InstanSeg: an embedding-based instance segmentation algorithm optimized "
            "for accurate, efficient and portable cell segmentation. arXiv 2408.15954 (2024)",
    "url": "https://arxiv.org/abs/2408.15954",
}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MIN_SPEC = (0, 5, 14, 3)  # older bioimageio.spec breaks on pydantic 2.14 (package_file_descr_serializer)


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
    """A (1, C, 128, 128) test image at the model's pixel size: a crop of the bundled example of its kind
    (H&E for an RGB brightfield model, the fluorescence field for a one-channel model), else synthetic
    (every channel a nuclear fluorescence picture of the same nuclei, with its own noise)."""
    from phenoseg.synthetic import render_image, synthetic_labels

    cfg = net.config
    example = {3: EXAMPLES / "he_dsb2018.tif", 1: EXAMPLES / "fluo_dsb2018.tif"}.get(cfg.in_channels)
    if example is not None and example.is_file() and (cfg.in_channels == 1) == (cfg.modality == "fluorescence"):
        from phenoseg.io.images import read_image
        from phenoseg.preprocess import resample_image

        image = read_image(example)
        data = resample_image(image.data.astype(np.float32), image.pixel_size_um / cfg.pixel_size_um)
        h, w = data.shape[-2:]
        if h >= 128 and w >= 128:
            y, x = (h - 128) // 2, (w - 128) // 2
            return np.rint(data[None, :, y : y + 128, x : x + 128]).astype(np.float32)

    lab = synthetic_labels((128, 128), 24, seed=1, radius=(4, 8))
    if cfg.adaptor is not None:  # a ChannelNet model: a synthetic 4-channel multiplexed field
        from phenoseg.synthetic.multiplex import render_multiplex

        return np.rint(render_multiplex(lab, np.random.default_rng(1), n_channels=4).image)[None]
    n = net.config.in_channels
    if n == 3 and net.config.modality == "brightfield":
        return render_image(lab, "brightfield", seed=1)[None].astype(np.float32)
    return np.concatenate([render_image(lab, "fluorescence", seed=1 + c) for c in range(n)])[None].astype(np.float32)


def validation_section(net: InstanSegNet, model_dir: Path | None = None) -> str:
    """The package README's ``## Validation``: the model card's validation table when the model folder has
    one, else the scores in its config."""
    card = Path(model_dir) / "MODEL_CARD.md" if model_dir else None
    if card is not None and card.is_file():
        text = card.read_text()
        start = text.find("## Validation")
        if start >= 0:
            end = text.find("\n## ", start + 3)
            body = text[start:end if end > 0 else None].split("\n", 1)[1]
            return "## Validation\n" + body.rstrip() + "\n"
    per = (net.config.metrics or {}).get("val_model_resolution") or {}
    if not per:
        return "## Validation\n\nNo validation scores were recorded for this model.\n"
    rows = "".join(f"| {k} | {m.get('f1@0.5', float('nan')):.3f} | {m.get('f1_mean', float('nan')):.3f} | "
                   f"{m.get('pq', float('nan')):.3f} |\n" for k, m in per.items())
    return ("## Validation\n\nOn the validation images at the model's pixel size:\n\n"
            "| dataset | F1@0.5 | F1^μ | PQ |\n|---|---|---|---|\n" + rows)


def build_package(net: InstanSegNet, folder: Path, licence: str = "Apache-2.0", maintainer: str | None = None,
                  model_dir: Path | None = None) -> Path:
    """Write the package files into ``folder``; returns the rdf.yaml path. ``maintainer``: the GitHub user
    bioimage.io lists as the package's maintainer."""
    import tifffile
    import yaml

    cfg = net.config
    folder.mkdir(parents=True, exist_ok=True)
    ts = export_torchscript(net, folder / "instanseg.pt")
    x = _test_input(net)
    y = torch.jit.load(str(ts))(torch.from_numpy(x)).numpy().astype(np.int32)
    np.save(folder / "test_input.npy", x)
    np.save(folder / "test_output.npy", y)
    tifffile.imwrite(folder / "sample_input.tif", x[0], metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "sample_output.tif", y[0], metadata={"axes": "CYX"})
    from phenoseg.io.overlay import overlay, write_png

    write_png(folder / "cover.png", overlay(x[0].astype(np.uint16 if x.max() > 255 else np.uint8), y[0, 0]))
    doc = folder / "README.md"
    inputs = "any number of channels, in any order" if cfg.adaptor else ", ".join(cfg.channel_names)
    doc.write_text(
        f"# {cfg.name}\n\n{cfg.description}\n\nInstanSeg-style segmentation exported by phenoseg. Input: "
        f"{inputs} at {cfg.pixel_size_um} µm/px (resample first), raw intensities; output: "
        f"int32 instance labels ({', '.join(cfg.targets)}), 0 = background. The TorchScript file normalises its "
        f"input itself (robust {cfg.norm_percentiles[0]} / {cfg.norm_percentiles[1]} percentiles; NaN pixels "
        "count as outside the image) and runs the whole postprocessing.\n\n"
        f"Training data and their licences: {', '.join(cfg.training.get('datasets', [])) or 'see the model card'}."
        "\n\n" + validation_section(net, model_dir)
    )
    if cfg.adaptor is not None:  # ChannelNet: any number of channels, in any order
        channel = {"type": "index", "id": "c", "size": {"min": 1, "step": 1},
                   "description": "image channels, any number and order (ChannelNet)"}
    else:
        channel = {"type": "channel", "channel_names": list(cfg.channel_names)}
    rdf = {
        "type": "model",
        "format_version": "0.5.4",
        "name": f"phenoseg {cfg.name.replace('_', ' ')}",
        "description": cfg.description or f"phenoseg {cfg.name}",
        "authors": [{"name": "phenoseg developers"}],
        **({"maintainers": [{"name": maintainer, "github_user": maintainer}]} if maintainer else {}),
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
            "sample_tensor": {"source": "sample_input.tif", "sha256": _sha256(folder / "sample_input.tif")},
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
            "sample_tensor": {"source": "sample_output.tif", "sha256": _sha256(folder / "sample_output.tif")},
            "data": {"type": "int32"},
        }],
        "weights": {
            "torchscript": {"source": "instanseg.pt", "sha256": _sha256(ts),
                            "pytorch_version": torch.__version__.split("+")[0]},
        },
        "config": {"phenoseg": {"model": cfg.name, "pixel_size_um": cfg.pixel_size_um}},
    }
    rdf_path = folder / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
    return rdf_path


def validate(rdf_path: Path) -> str:
    """Validate with bioimageio.spec; returns the status ('valid-format', 'passed', ...) or raises."""
    try:
        import bioimageio.spec
        from bioimageio.spec import load_description
    except ImportError as exc:
        raise PhenosegError("validation needs bioimageio.spec: pip install 'phenoseg[bioimageio]'") from exc
    version = tuple(int(v) for v in bioimageio.spec.__version__.split(".")[:4] if v.isdigit())
    if version < MIN_SPEC:
        raise PhenosegError(f"bioimageio.spec {bioimageio.spec.__version__} is too old (it breaks on current "
                            "pydantic): pip install 'bioimageio.spec>=0.5.14.3', or pass --no-validate")
    descr = load_description(rdf_path, perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status == "failed":
        errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors]
        raise PhenosegError("BioImage.IO validation failed: " + "; ".join(errors))
    return summary.status


def export_bioimageio(net: InstanSegNet, out: str | Path, licence: str = "Apache-2.0",
                      maintainer: str | None = None, check: bool = True, model_dir: Path | None = None
                      ) -> tuple[Path, str]:
    """Write a package folder, or a .zip when ``out`` ends with .zip, validated by bioimageio.spec first
    (``check``): a package that fails is never left at ``out``. Returns (path, validation status)."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        build_package(net, Path(tmp), licence, maintainer, model_dir)
        status = validate(Path(tmp) / "rdf.yaml") if check else "not validated"
        if out.suffix == ".zip":
            partial = out.with_name(f".{out.name}.tmp")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(Path(tmp).iterdir()):
                    z.write(f, f.name)
            partial.replace(out)
            return out, status
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tmp, out)
    return out, status
