"""The argument parser of every `phenoseg` subcommand (what each does lives in its own module)."""

from __future__ import annotations

import argparse

from phenoseg.errors import PhenosegError
from phenoseg.outputs.image import DEFAULT_OUTPUTS, OUTPUT_KINDS


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return v


def dataset_pixel_sizes(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise PhenosegError(f"--data-pixel-size expects NAME=UM, got '{item}'")
        name, value = item.split("=", 1)
        out[name] = positive_float(value)
    return out


def package_version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("phenoseg")
    except PackageNotFoundError:
        return "unknown"


MEASURE_KINDS = ", ".join(k for k in OUTPUT_KINDS if k not in ("labels", "zarr"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="phenoseg", description="Find every nucleus and cell in microscopy images.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"phenoseg {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment images; writes labels, GeoJSON, tables, overlays and a report")
    seg.add_argument("inputs", nargs="+", help="image files (PNG, JPEG, TIFF, OME-TIFF) or folders")
    seg.add_argument("-o", "--output", help="output folder (default: a phenoseg/ folder next to each input); the "
                                          "inputs' sub-folders are mirrored in it, so same-named files never collide")
    seg.add_argument("--recursive", action="store_true",
                     help="folders: also segment the images of their sub-folders (plate / well layouts)")
    seg.add_argument("--model", default="auto", help="bundled model name or model folder (default: chosen per image)")
    seg.add_argument("--pixel-size", type=positive_float, help="µm per pixel of the inputs (overrides metadata)")
    seg.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                     help="where the network runs: auto (a GPU when there is one), cpu, cuda or mps")
    seg.add_argument("--outputs", default=None,
                     help=f"comma-separated, from {', '.join(OUTPUT_KINDS)} (default: {DEFAULT_OUTPUTS}; "
                          "for whole slides zarr,geojson,csv)")
    seg.add_argument("--regions", help="QuPath annotation GeoJSON: keep only objects inside these regions")
    seg.add_argument("--seed-threshold", type=float, help="override the model's seed threshold")
    seg.add_argument("--mask-threshold", type=float, help="override the model's membership threshold")
    seg.add_argument("--min-area", type=int, help="drop objects smaller than this (px at model resolution)")
    seg.add_argument("--backend", default="auto", choices=["torch", "onnx", "auto"],
                     help="network runtime on the CPU: auto (default: ONNX Runtime, ~2.6x faster with the same "
                          "labels; torch for the ChannelNet model), torch, or onnx")
    seg.add_argument("--channels", help="channels to segment on, by name or 0-based index, comma-separated "
                     "(e.g. DAPI, or 0 for the first; default: chosen from the image and said in one line)")
    seg.add_argument("--measure-channels", help="channels to measure (default: every channel of the image)")
    seg.add_argument("--axes", help="the input files' axes when their metadata is wrong or missing, one letter per "
                                    "dimension (C channels, Y, X), e.g. CYX or YXC")
    seg.add_argument("--tile-size", type=int, help="process in tiles of N px (at model resolution); "
                     "automatic above 2048 px, where OUTDIR/<stem>.ome.zarr replaces the label TIFF")
    seg.add_argument("--no-tissue-mask", action="store_true",
                     help="whole slides: process every tile (default: skip background found by Otsu on a thumbnail)")
    seg.add_argument("--restart", action="store_true",
                     help="whole slides: start over instead of resuming an interrupted run")
    seg.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                     help="spread the inputs over Dask workers: a local cluster, or the scheduler at ADDRESS "
                          "(e.g. tcp://host:8786; pip install 'phenoseg[dask]')")
    seg.add_argument("--workers", type=int, default=2, help="--dask local: number of worker processes (default 2)")
    seg.add_argument("--threads-per-task", type=int, default=1,
                     help="--dask ADDRESS: torch threads per task on the cluster's workers (default 1)")
    seg.add_argument("--tta", action="store_true", help="test-time augmentation (8 flips/rotations; ~8× slower)")
    seg.add_argument("--classify", nargs="?", const="auto", metavar="MODEL",
                     help="classify every object after segmentation (cell classes and a detection probability); "
                          "MODEL: a classifier (bundled name or folder; default: the bundled one for RGB images)")
    seg.add_argument("--min-detection-probability", type=float, metavar="P",
                     help="with --classify: remove objects whose detection probability is below P (more "
                          "precision, less recall)")
    seg.add_argument("--positivity", nargs="?", const="auto", metavar="MODEL",
                     help="marker positivity of every cell for every measured channel (fluorescence / multiplexed "
                          "images); MODEL: a positivity model (default: the bundled marker_positivity)")
    seg.add_argument("--positivity-threshold", type=float, metavar="P",
                     help="with --positivity: the probability from which a cell is called positive (default 0.5)")
    seg.add_argument("--quiet", action="store_true", help="print only errors")

    ev = sub.add_parser("evaluate", help="F1 / SQ / PQ of predictions (or of a model on a dataset)")
    ev.add_argument("--pred", help="folder of predicted label images")
    ev.add_argument("--truth", help="folder of ground-truth label images")
    ev.add_argument("--model", help="model to run on --data")
    ev.add_argument("--data", help="dataset folder (manifest layout)")
    ev.add_argument("--split", default="val", help="with --data: the split to score (default val)")
    ev.add_argument("--target", help="with --model: the target to score (default: the one the model predicts and "
                                     "the dataset labels)")
    ev.add_argument("--pixel-size", type=positive_float, help="µm/px of the dataset's images when it has none")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                    help="where the network runs: auto (a GPU when there is one), cpu, cuda or mps")
    ev.add_argument("--tta", action="store_true", help="test-time augmentation when running --model")
    ev.add_argument("--segmenter", help="with a classifier --model: the segmentation model whose objects it classifies "
                                        "(default brightfield_nuclei)")
    ev.add_argument("--seed-threshold", type=float, help="with a classifier --model: the segmenter's seed threshold")
    ev.add_argument("--min-detection-probability", type=float, metavar="P",
                    help="with a classifier --model: the detection filter whose scores are printed (default: none; "
                         "the JSON has every filter)")
    ev.add_argument("--json", help="write the scores as JSON here")
    ev.add_argument("--quiet", action="store_true", help="print only errors and the scores")

    tr = sub.add_parser("train", help="train a model on datasets in the manifest layout")
    tr.add_argument("--data", nargs="+", required=True, help="dataset folders")
    tr.add_argument("--out", required=True, help="model folder to write (config.json + weights.safetensors)")
    tr.add_argument("--pixel-size", type=positive_float, default=0.5, help="the model's µm/px (default 0.5)")
    tr.add_argument("--data-pixel-size", nargs="*", default=[], metavar="NAME=UM",
                    help="pixel size of datasets whose manifest has none, e.g. dsb2018_fluo=0.5")
    tr.add_argument("--minutes", type=positive_float, help="time budget (default: until --steps)")
    tr.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    tr.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    tr.add_argument("--init", help="start from this model's weights (bundled name or folder): fine-tuning")
    tr.add_argument("--seed", type=int, default=0, help="random seed (CPU runs are reproducible from it)")
    tr.add_argument("--crop", type=int, default=192, help="training crop size in px at model resolution")
    tr.add_argument("--batch", type=int, default=4, help="crops per optimiser step")
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    tr.add_argument("--targets", help="comma-separated targets to predict, e.g. nuclei,cells (default: every target "
                                      "the datasets have labels for: labels/ or labels_nuclei/ → nuclei, "
                                      "labels_cells/ → cells)")
    tr.add_argument("--separate-decoders", action="store_true",
                    help="one decoder per target instead of one shared decoder (multi-target models)")
    tr.add_argument("--channelnet", action="store_true",
                    help="a ChannelNet adaptor in front of the network: images may have any number and order of "
                         "channels (multiplexed panels; batches padded with absent channels)")
    tr.add_argument("--widths", default="16,32,64,128", help="encoder / decoder widths per level")
    tr.add_argument("--blocks-per-level", type=int, default=1, help="residual blocks per level")
    tr.add_argument("--grow", action="store_true",
                    help="with --init: extend its network to --widths / --blocks-per-level (new parts start as "
                         "identities), then train")
    tr.add_argument("--scale-jitter", type=float, default=0.0, metavar="F",
                    help="show half the crops zoomed by a random factor in [1/(1+F), 1+F] (e.g. 0.25): robustness "
                         "to nucleus size and to pixel sizes that are a little off")
    tr.add_argument("--window", type=int, default=64, help="membership window (px at model resolution)")
    tr.add_argument("--val-minutes", type=float, default=5.0, help="validate every N minutes")
    tr.add_argument("--modality", default="brightfield", choices=["brightfield", "fluorescence"],
                    help="what the images are (brightfield turns on stain / colour augmentation)")
    tr.add_argument("--name", help="the model's name (default: the --out folder's name)")
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                    help="where the network runs: auto (a GPU when there is one), cpu, cuda or mps")
    tr.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    tr.add_argument("--workers", type=int, default=0,
                    help="data-loading processes (use several with a GPU; 0 = in the main process, reproducible)")
    tr.add_argument("--val-max-images", type=int, default=40, help="validation images per dataset")
    tr.add_argument("--no-tune", action="store_true", help="skip the final threshold search on validation images")
    tr.add_argument("--json", help="also write the training summary as JSON here")
    tr.add_argument("--quiet", action="store_true", help="no progress bar; only the summary")

    me = sub.add_parser("measure", help="measure objects of existing label images (from any program)")
    me.add_argument("image", help="the image the labels belong to")
    me.add_argument("--nuclei", required=True, help="nucleus label image")
    me.add_argument("--cells", help="cell label image")
    me.add_argument("--pixel-size", type=positive_float, help="µm per pixel (overrides metadata)")
    me.add_argument("-o", "--output", required=True, help="output folder")
    me.add_argument("--outputs", default="csv", help=f"comma-separated, from {MEASURE_KINDS}")
    me.add_argument("--regions", help="QuPath annotation GeoJSON: keep only objects inside these regions")
    me.add_argument("--quiet", action="store_true", help="print only errors")

    cl = sub.add_parser("classify", help="classify the objects of label images made by any program")
    cl.add_argument("image", help="the image the labels belong to")
    cl.add_argument("--nuclei", required=True, help="nucleus label image")
    cl.add_argument("--model", default="auto", help="classifier (bundled name or folder; default: the bundled "
                                                    "one for RGB images)")
    cl.add_argument("--pixel-size", type=positive_float, help="µm per pixel (overrides metadata)")
    cl.add_argument("--min-detection-probability", type=float, metavar="P",
                    help="remove objects whose detection probability is below P")
    cl.add_argument("--tta", action="store_true", help="test-time augmentation (8 flips/rotations, mean)")
    cl.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                    help="where the network runs: auto (a GPU when there is one), cpu, cuda or mps")
    cl.add_argument("-o", "--output", required=True, help="output folder")
    cl.add_argument("--outputs", default="geojson,csv", help=f"comma-separated, from {MEASURE_KINDS} and labels")
    cl.add_argument("--quiet", action="store_true", help="print only errors")

    po = sub.add_parser("positivity", help="marker positivity of the cells of label images made by any program")
    po.add_argument("image", help="the multiplexed / fluorescence image the labels belong to")
    po.add_argument("--cells", required=True, help="cell label image (or nucleus labels, scored as the objects)")
    po.add_argument("--nuclei", help="nucleus label image (its nuclei become the cells' compartment)")
    po.add_argument("--channels", help="channels to score, by name or 0-based index, comma-separated (default: all)")
    po.add_argument("--model", default="auto", help="positivity model (bundled name or folder; default "
                                                    "marker_positivity)")
    po.add_argument("--positivity-threshold", type=float, metavar="P",
                    help="the probability from which a cell is called positive (default 0.5)")
    po.add_argument("--pixel-size", type=positive_float, help="µm per pixel (overrides metadata)")
    po.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                    help="where the network runs: auto (a GPU when there is one), cpu, cuda or mps")
    po.add_argument("-o", "--output", required=True, help="output folder")
    po.add_argument("--outputs", default="geojson,csv,report",
                    help=f"comma-separated, from {MEASURE_KINDS} and labels")
    po.add_argument("--quiet", action="store_true", help="print only errors")

    cm = sub.add_parser("cluster-metrics", help="label-free quality of segmentations: Leiden clusters of the cells' "
                                                "mean intensities, Davies-Bouldin / Silhouette / Calinski-Harabasz")
    cm.add_argument("tables", nargs="+", help="per-cell CSV tables (phenoseg's or MCMICRO's), one per image")
    cm.add_argument("--channels", help="channel columns to use, comma-separated (default: every mean-intensity "
                                       "column)")
    cm.add_argument("--resolutions", default="0.05,0.10,0.15", help="Leiden resolutions (default 0.05,0.10,0.15)")
    cm.add_argument("--neighbours", type=int, default=15, help="k of the kNN graph (default 15)")
    cm.add_argument("--json", help="also write the metrics as JSON here")

    tc = sub.add_parser("train-classifier", help="train a crop classifier (cell classes + detection probability)")
    tc.add_argument("--data", nargs="+", required=True,
                    help="dataset folders: instance labels with classes/<id>.json, or points/<id>.csv (x,y,class) / "
                         "QuPath GeoJSON points")
    tc.add_argument("--out", required=True, help="model folder to write")
    tc.add_argument("--silver", nargs="+", default=[], metavar="DATASET",
                    help="unannotated datasets a teacher labels; a second head learns them, only the gold head "
                         "predicts")
    tc.add_argument("--teacher", help="with --silver: the classifier that labels them (default: --init)")
    tc.add_argument("--init", help="start from this classifier's weights")
    tc.add_argument("--segmenter", default="brightfield_nuclei", help="segmentation model whose objects are "
                                                                      "classified (default brightfield_nuclei)")
    tc.add_argument("--seed-threshold", type=float, help="the segmenter's seed threshold for the training objects")
    tc.add_argument("--minutes", type=positive_float, help="time budget")
    tc.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    tc.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    tc.add_argument("--batch", type=int, default=128, help="crops per step (default 128)")
    tc.add_argument("--crop", type=int, default=64, help="field of view in px at the classifier's pixel size")
    tc.add_argument("--pixel-size", type=positive_float, default=0.5, help="the classifier's µm/px (default 0.5)")
    tc.add_argument("--val-minutes", type=float, default=4.0, help="validate every N minutes")
    tc.add_argument("--name", help="the model's name (default: the --out folder's name)")
    tc.add_argument("--quiet", action="store_true", help="no progress bar")

    tp = sub.add_parser("train-positivity", help="train a marker-positivity model (MobileNet-ISAB) on synthetic "
                                                 "markers rendered on the datasets' nucleus maps")
    tp.add_argument("--data", nargs="+", required=True, help="dataset folders with nucleus labels (labels/<id>.tif)")
    tp.add_argument("--data-pixel-size", nargs="*", default=[], metavar="NAME=UM",
                    help="pixel size of datasets whose manifest has none")
    tp.add_argument("--out", required=True, help="model folder to write")
    tp.add_argument("--minutes", type=positive_float, help="time budget")
    tp.add_argument("--steps", type=int, help="stop after this many optimiser steps")
    tp.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    tp.add_argument("--sets-per-step", type=int, default=4, help="marker images (ISAB sets) per step (default 4)")
    tp.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    tp.add_argument("--no-isab", action="store_true", help="the per-cell ablation (no set attention)")
    tp.add_argument("--windows-per-set", type=int, default=3,
                    help="label-map windows imaged with one regime to form each set (default 3)")
    tp.add_argument("--init", help="start from this positivity model's weights (bundled name or folder)")
    tp.add_argument("--seed", type=int, default=0, help="random seed")
    tp.add_argument("--val-minutes", type=float, default=5.0, help="validate every N minutes")
    tp.add_argument("--name", help="the model's name (default: the --out folder's name)")
    tp.add_argument("--quiet", action="store_true", help="no progress bar")

    ex = sub.add_parser("export", help="export a model (whole-pipeline TorchScript for LibTorch / QuPath)")
    ex.add_argument("--model", required=True, help="bundled model name or model folder")
    ex.add_argument("--format", default="torchscript", choices=["torchscript", "bioimageio"],
                    help="torchscript: one .pt file; bioimageio: a BioImage.IO 0.5 package")
    ex.add_argument("-o", "--output", required=True,
                    help="output: FILE.pt (torchscript), or a folder / FILE.zip (bioimageio)")
    ex.add_argument("--no-validate", action="store_true", help="bioimageio: skip bioimageio.spec validation")
    ex.add_argument("--maintainer", metavar="GITHUB_USER", help="bioimageio: the package's maintainer on GitHub")

    mo = sub.add_parser("models", help="list the bundled models")
    mo.add_argument("--json", action="store_true", help="print JSON")
    return parser
