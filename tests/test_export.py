"""Whole-pipeline TorchScript: runs without phenoseg and equals the Segmenter."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from phenoseg.cli import main
from phenoseg.inference.segmenter import Segmenter
from phenoseg.models.zoo import bundled_model_dirs, load_model
from phenoseg.postprocess.fragments import keep_largest_parts
from phenoseg.synthetic import render_image, synthetic_labels

RUNNER = """
import sys, json
import numpy as np, torch
sys.modules["phenoseg"] = None  # phenoseg must not be importable here
try:
    import phenoseg  # noqa
    raise SystemExit("phenoseg was importable")
except ImportError:
    pass
m = torch.jit.load(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
labels = m(x)
np.save(sys.argv[3], labels.numpy())
print(json.dumps({"pixel_size_um": m.pixel_size_um, "channel_names": list(m.channel_names),
                  "targets": list(m.targets)}))
"""


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def export_and_compare(model, tmp_path, image: np.ndarray):
    out = tmp_path / "model.pt"
    assert main(["export", "--model", str(model), "--format", "torchscript", "-o", str(out)]) == 0
    np.save(tmp_path / "x.npy", image[None].astype(np.float32))
    (tmp_path / "run.py").write_text(RUNNER)
    proc = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(out), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout.strip().splitlines()[-1])
    exported = np.load(tmp_path / "y.npy")[0, 0]
    net = load_model(model)
    result = Segmenter(net, device="cpu").segment(image, net.config.pixel_size_um)
    # the scripted decoder drops fragments with a cheaper rule; beyond the detached fragments the Python
    # path removes exactly, the partitions are the same
    assert same_partition(keep_largest_parts(exported), result.labels["nuclei"])
    assert meta["pixel_size_um"] == net.config.pixel_size_um and meta["targets"] == net.config.targets
    return exported


def test_exported_pipeline_runs_without_phenoseg(tmp_path, model_dir):
    lab = synthetic_labels((120, 100), 15, seed=8)
    exported = export_and_compare(model_dir, tmp_path, render_image(lab, "brightfield", seed=8))
    assert exported.shape == (120, 100)


@pytest.mark.parametrize("name", sorted(bundled_model_dirs()))
def test_bundled_models_export(tmp_path, name):
    net = load_model(name)
    lab = synthetic_labels((128, 128), 20, seed=9)
    image = render_image(lab, net.config.modality, seed=9)
    exported = export_and_compare(name, tmp_path, image)
    assert exported.max() > 0


def test_exported_module_rejects_bad_input(tmp_path, model_dir):
    from phenoseg.export.torchscript import export_torchscript

    m = torch.jit.load(str(export_torchscript(load_model(model_dir), tmp_path / "m.pt")))
    for bad, msg in ((torch.rand(1, 2, 64, 64), "channel"), (torch.rand(1, 3, 8, 8), "too small"),
                     (torch.full((1, 3, 32, 32), float("nan")), "NaN")):
        with pytest.raises(Exception, match=msg):
            m(bad)


@pytest.mark.slow
def test_cpp_libtorch_program_segments(tmp_path, model_dir):
    """Build tests/cpp/segment.cpp against the LibTorch inside the torch wheel and run it on an image."""
    import shutil
    from pathlib import Path

    from phenoseg.export.torchscript import export_torchscript

    assert shutil.which("cmake") and shutil.which("g++"), "cmake and g++ are needed to build the LibTorch check"
    src = Path(__file__).parent / "cpp"
    build = tmp_path / "build"
    build.mkdir()
    prefix = torch.utils.cmake_prefix_path
    for cmd in (["cmake", f"-DCMAKE_PREFIX_PATH={prefix}", str(src)], ["make", "-j2"]):
        proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    model = export_torchscript(load_model(model_dir), tmp_path / "m.pt")
    lab = synthetic_labels((96, 112), 12, seed=2)
    image = render_image(lab, "brightfield", seed=2).astype(np.float32)
    image.tofile(tmp_path / "img.raw")
    proc = subprocess.run([str(build / "segment"), str(model), str(tmp_path / "img.raw"), "3", "96", "112",
                           str(tmp_path / "out.raw")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pixel_size_um 0.5" in proc.stdout
    cpp_labels = np.fromfile(tmp_path / "out.raw", dtype=np.int32).reshape(96, 112)
    py_labels = torch.jit.load(str(model))(torch.from_numpy(image)[None])[0, 0].numpy()
    assert np.array_equal(cpp_labels, py_labels)


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_bioimageio_package_validates(tmp_path, model_dir, capsys, suffix):
    import zipfile

    out = tmp_path / f"pkg{suffix}"
    assert main(["export", "--model", str(model_dir), "--format", "bioimageio", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation: valid-format" in printed or "validation: passed" in printed
    names = set(zipfile.ZipFile(out).namelist()) if suffix else {p.name for p in out.iterdir()}
    assert {"rdf.yaml", "instanseg.pt", "test_input.npy", "test_output.npy", "cover.png", "README.md"} <= names
    assert not any("state_dict" in n or n.endswith(".py") for n in names)  # TorchScript only: runs without phenoseg


def test_bundled_bioimageio_package_follows_the_conventions(tmp_path, capsys):
    import yaml

    out = tmp_path / "bf"
    assert main(["export", "--model", "brightfield_nuclei", "--format", "bioimageio", "-o", str(out)]) == 0
    assert "--maintainer GITHUB_USER" in capsys.readouterr().out  # bioimage.io needs one; its check is online
    rdf = yaml.safe_load((out / "rdf.yaml").read_text())
    assert rdf["outputs"][0]["data"]["type"] == "int32" and list(rdf["weights"]) == ["torchscript"]
    assert rdf["inputs"][0]["sample_tensor"]["source"] == "sample_input.tif"
    assert np.load(out / "test_output.npy").dtype == np.int32
    readme = (out / "README.md").read_text()
    assert "## Validation" in readme and "monuseg" in readme  # the model card's validation table
    import tifffile

    sample = tifffile.imread(out / "sample_input.tif")
    assert sample.shape == (3, 128, 128) and sample.std() > 10  # a crop of the bundled H&E example


def test_maintainer_is_written(tmp_path):
    import yaml

    from phenoseg.export.bioimageio import build_package

    rdf = yaml.safe_load(build_package(load_model("fluorescence_nuclei"), tmp_path, "CC0-1.0", "phenoseg-dev")
                         .read_text())
    assert rdf["maintainers"] == [{"name": "phenoseg-dev", "github_user": "phenoseg-dev"}]


def test_failed_validation_leaves_no_package(tmp_path, monkeypatch, capsys):
    from phenoseg.errors import PhenosegError
    from phenoseg.export import bioimageio

    def refuse(path):
        raise PhenosegError("BioImage.IO validation failed: test")

    monkeypatch.setattr(bioimageio, "validate", refuse)
    out = tmp_path / "pkg.zip"
    assert main(["export", "--model", "fluorescence_nuclei", "--format", "bioimageio", "-o", str(out)]) != 0
    assert not out.exists() and not list(tmp_path.iterdir())


def test_onnx_backend_matches_torch(rgb_tiff, model_dir):
    torch_result = Segmenter(str(model_dir), device="cpu", backend="torch").segment(rgb_tiff)
    onnx_result = Segmenter(str(model_dir), device="cpu", backend="onnx").segment(rgb_tiff)
    a, b = torch_result.labels["nuclei"], onnx_result.labels["nuclei"]
    # outputs agree to ~1e-5, so labels agree except at the rare pixel on a threshold
    assert (a > 0).mean() > 0 and np.mean((a > 0) == (b > 0)) > 0.99


def test_onnx_export_is_cached_between_runs(model_dir, tmp_path, monkeypatch):
    from phenoseg.inference import onnx_backend
    from phenoseg.inference.onnx_backend import OnnxNetwork, cache_dir

    monkeypatch.setenv("PHENOSEG_CACHE", str(tmp_path / "cache"))
    net = load_model(str(model_dir), torch.device("cpu"))
    x = torch.rand(1, net.config.in_channels, 64, 64)
    first = OnnxNetwork(net)(x)
    files = list(cache_dir().glob("*.onnx"))
    assert len(files) == 1 and cache_dir() == tmp_path / "cache" / "onnx"

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend.torch.onnx, "export", no_export)
    assert torch.equal(OnnxNetwork(net)(x), first)  # read from the cache
    with torch.no_grad():
        next(net.parameters()).add_(0.01)  # other weights, other key: exported again
    with pytest.raises(AssertionError, match="exported again"):
        OnnxNetwork(net)


def test_onnx_export_without_a_writable_cache(model_dir, tmp_path, monkeypatch):
    from phenoseg.inference.onnx_backend import OnnxNetwork

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PHENOSEG_CACHE", str(blocker))
    net = load_model(str(model_dir), torch.device("cpu"))
    y = OnnxNetwork(net)(torch.rand(1, net.config.in_channels, 64, 64))
    assert torch.isfinite(y).all()
