"""Segmenting many inputs with outputs: images in memory, large ones (and slides) tiled and streamed,
optionally on Dask. Callable from Python (:func:`segment_batch` with :class:`SegmentOptions`); the
``phenoseg segment`` command is a thin layer over it."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phenoseg.checks import check_options
from phenoseg.errors import PhenosegError
from phenoseg.io.inputs import ensure_writable, find_inputs, image_stem, missing_folders, plan_output_dirs, remove_empty
from phenoseg.outputs.image import DEFAULT_OUTPUTS, parse_outputs

SLIDE_OUTPUTS = ("zarr", "labels", "geojson", "csv", "anndata")
DEFAULT_SLIDE_OUTPUTS = ["zarr", "geojson", "csv"]


@dataclass
class SegmentOptions:
    """Everything a batch run can set (``phenoseg segment --help`` names the same things as flags).

    ``outputs`` None: the defaults (labels, geojson, csv, overlay, report for images; zarr, geojson, csv for
    whole slides). ``output_dir`` None: a ``phenoseg/`` folder next to each input. ``passes``: per-object
    passes run after the measurements (each adds columns to every table output)."""

    model: str = "auto"
    output_dir: str | os.PathLike | None = None
    pixel_size_um: float | None = None
    device: str = "auto"
    backend: str = "auto"
    tta: bool = False
    outputs: list[str] | None = None
    regions: str | os.PathLike | None = None
    seed_threshold: float | None = None
    mask_threshold: float | None = None
    min_area: int | None = None
    channels: str | list | None = None  # channels to segment on (None: chosen from the image)
    measure_channels: str | list | None = None  # channels to measure (None: every channel)
    axes: str | None = None  # the files' axes when their metadata is wrong or missing ("CYX", "YXC", ...)
    tile_size: int | None = None
    tissue_mask: bool = True
    restart: bool = False
    dask: str | None = None
    workers: int = 2
    threads_per_task: int = 1
    quiet: bool = False
    recursive: bool = False  # folders: also the images in their sub-folders (plate layouts)
    passes: list = field(default_factory=list)
    classify: str | None = None  # a classifier (bundled name or folder; "auto": the bundled one for RGB)
    min_detection_probability: float | None = None  # with classify: drop objects less likely to be nuclei
    positivity: str | None = None  # a positivity model (bundled name or folder; "auto": the bundled one)
    positivity_threshold: float | None = None  # with positivity: probability called positive (default 0.5)

    def thresholds(self) -> dict:
        """The postprocessing overrides that are set."""
        from phenoseg.inference.segmenter import thresholds_dict

        return thresholds_dict(self.seed_threshold, self.mask_threshold, self.min_area)


@dataclass
class BatchResult:
    """What a batch run did: the inputs, the failures (path, message) and per-image report entries."""

    inputs: list[Path]
    failures: list[tuple[Path, str]]
    reports: list
    report_path: Path | None = None


class Reporter:
    """Where a batch says what it does (stdout) and what failed (stderr); ``translate`` rewrites messages
    (the CLI turns parameter names into its flags)."""

    def __init__(self, quiet: bool = False, translate: Callable[[str], str] = str) -> None:
        self.quiet, self.translate = quiet, translate

    def say(self, msg: str) -> None:
        """A progress line (not with quiet), on a line of its own even while a progress bar is drawn."""
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(self.translate(msg), file=sys.stdout)
            sys.stdout.flush()

    def error(self, msg: str) -> None:
        """One failure, as it happens."""
        print(f"phenoseg: error: {self.translate(msg)}", file=sys.stderr, flush=True)


def run_each(files: list[Path], process: Callable[[Path], object], reporter: Reporter,
             debug: bool = False) -> tuple[list, list]:
    """Call ``process(path)`` for every input; PhenosegError and unexpected errors become failures and the
    other inputs still run. Returns (failures, non-None results)."""
    failures: list[tuple[Path, str]] = []
    reports = []
    for path in files:
        try:
            report = process(path)
            if report is not None:
                reports.append(report)
        except PhenosegError as exc:
            failures.append((path, str(exc)))
            reporter.error(str(exc))
        except Exception as exc:
            if debug:
                raise
            failures.append((path, f"{type(exc).__name__}: {exc}"))
            reporter.error(f"{path}: {type(exc).__name__}: {exc}")
    return failures, reports


def make_segmenter(options: SegmentOptions):
    """The Segmenter of a run."""
    from phenoseg.inference.segmenter import Segmenter

    return Segmenter(options.model, device=options.device, backend=options.backend, tta=options.tta)


def slide_mode(path: Path, options: SegmentOptions, seg, kinds: list[str]) -> bool:
    """Whole-slide (tiled, streamed) processing: slide formats, OME-Zarr output asked for, or an image
    larger than the automatic tile size at the model's resolution."""
    from phenoseg.inference import segmenter as segmenter_module
    from phenoseg.io.channels import channel_indices
    from phenoseg.io.slide import TIFFSLIDE_SUFFIXES, open_slide

    suffix = path.suffix.lower()
    if suffix in TIFFSLIDE_SUFFIXES or suffix == ".zarr" or path.is_dir():
        return True
    if suffix not in (".tif", ".tiff", ".btf", ".tf8"):
        return False
    if "zarr" in kinds:
        return True
    with open_slide(path) as slide:
        px = options.pixel_size_um or slide.pixel_size_um
        channels = channel_indices(slide.channel_names, options.channels, str(path))
        n = len(channels) if channels is not None else slide.n_channels
        model_px = seg.model_pixel_size(n)
        scale = (px / model_px) if px else 1.0
        h, w = slide.shape_yx
        return max(h, w) * scale > segmenter_module.AUTO_TILE + 80


def process_one(path: Path, options: SegmentOptions, seg, reporter: Reporter, announced: set,
                executor=None, outdir: Path | None = None):
    """Segment one input and write its outputs into ``outdir`` (default: as :func:`plan_output_dirs` says
    for this input alone); returns its report entry (or None). ``executor`` runs a slide's tiles elsewhere."""
    kinds = parse_outputs(",".join(options.outputs)) if options.outputs else parse_outputs(DEFAULT_OUTPUTS)
    outdir = outdir if outdir is not None else plan_output_dirs([(path, Path("."))], options.output_dir)[path]
    created = missing_folders(outdir)
    ensure_writable(outdir)
    try:
        return _process(path, options, seg, reporter, announced, executor, outdir, kinds)
    except BaseException:
        remove_empty(created)  # a failed input leaves no empty output folder behind
        raise


def _process(path: Path, options: SegmentOptions, seg, reporter: Reporter, announced: set, executor, outdir: Path,
             kinds: list[str]):
    from phenoseg.inference.segmenter import to_image
    from phenoseg.io.channels import select_channels
    from phenoseg.outputs.image import ObjectSet, write_image_outputs

    if slide_mode(path, options, seg, kinds):
        return _process_slide(path, options, seg, reporter, outdir, kinds, executor, announced)
    image = to_image(path, options.axes)  # all channels: segmented on the chosen ones, measured on all
    result = seg.segment(image, options.pixel_size_um, channels=options.channels, **options.thresholds(),
                         tile_size=options.tile_size)
    if result.choice and result.choice not in announced:  # once per run for each kind of decision
        announced.add(result.choice)
        reporter.say(f"{result.choice} (override with model= / channels=)")
    measured = select_channels(image, options.measure_channels)
    from phenoseg.phenotype.steps import image_steps

    labels, steps, dropped = image_steps(options, image, measured, result.labels, result.pixel_size_um, str(path))
    passes = steps + list(options.passes)
    objects = ObjectSet(labels, result.scores, result.model, result.pixel_size_um, result.timings["total_s"],
                        list(result.notes))
    written, report, n = write_image_outputs(objects, measured, image_stem(path), outdir, kinds,
                                             Path(options.regions) if options.regions else None,
                                             passes=passes)
    counts = ", ".join(f"{c} {k}" for k, c in n.items())
    inside = " inside the regions" if options.regions else ""
    if options.min_detection_probability is not None:
        inside += f" ({dropped} below detection probability {options.min_detection_probability:g} removed)"
    notes = "".join(f"; warning: {note}" for note in result.notes)
    reporter.say(f"{path}: {counts}{inside} (model {result.model}, {result.pixel_size_um:g} µm/px, "
                 f"{result.timings['total_s']:.1f} s){notes} → {', '.join(str(w) for w in written)}")
    return report


def _process_slide(path: Path, options: SegmentOptions, seg, reporter: Reporter, outdir: Path, kinds: list[str],
                   executor, announced: set):
    from phenoseg.inference.slide_pipeline import SlideOptions, segment_slide
    from phenoseg.io.channels import channel_indices
    from phenoseg.io.slide import open_slide

    if options.axes:
        raise PhenosegError(f"{path}: axes= applies to images read in memory; a whole slide (or an image this large) "
                            "takes its axes from the file's metadata")
    with open_slide(path) as slide:
        channels = channel_indices(slide.channel_names, options.channels, str(path))
        measure = channel_indices(slide.channel_names, options.measure_channels, str(path))
    if options.outputs is None:
        outs = list(DEFAULT_SLIDE_OUTPUTS)
    else:
        outs = [k for k in kinds if k in SLIDE_OUTPUTS]
        skipped = [k for k in kinds if k not in SLIDE_OUTPUTS]
        if skipped:
            reporter.say(f"{path}: whole-slide mode writes {', '.join(SLIDE_OUTPUTS)}; not written: "
                         f"{', '.join(skipped)}")
        if not outs:
            raise PhenosegError(f"{path}: none of the outputs= asked for ({', '.join(kinds)}) can be written for a "
                                f"whole slide (choose from {', '.join(SLIDE_OUTPUTS)})")
    if options.positivity:
        raise PhenosegError(f"{path}: positivity= on whole slides (or images this large) is not supported yet: the "
                            "set of every cell of the slide is not gathered across tiles")
    passes = list(options.passes)
    if options.classify:  # the pass reads each tile's crops
        from phenoseg.phenotype.classify import slide_classify_pass

        passes.insert(0, slide_classify_pass(path, options.classify, options.device, options.tta,
                                             options.min_detection_probability))
    opts = SlideOptions(tile=options.tile_size, tissue_mask=options.tissue_mask, outputs=outs,
                        pixel_size_um=options.pixel_size_um, channels=channels, measure_channels=measure,
                        progress=not options.quiet,
                        resume=not options.restart, thresholds=options.thresholds(), passes=passes,
                        regions=str(options.regions) if options.regions else None)
    res = segment_slide(path, seg, outdir, image_stem(path), opts, executor)
    note = "whole-slide mode (large or pyramidal image, read in tiles)"
    if options.outputs is None and note not in announced:  # the outputs differ from an image's: say so once
        announced.add(note)
        reporter.say(f"{note}: writes {', '.join(outs)} (an OME-Zarr instead of a label TIFF; no overlay or "
                     "report); outputs= asks for others (labels for a label TIFF)")
    if res.choice and res.choice not in announced:
        announced.add(res.choice)
        reporter.say(f"{res.choice} (override with model= / channels=)")
    extra = f", resumed at tile row {res.resumed_from_row}" if res.resumed_from_row else ""
    counts = ", ".join(f"{n} {t}" for t, n in res.n_objects.items())
    reporter.say(f"{path}: {counts} in {res.tiles} tiles ({res.tiles_skipped} skipped: no tissue or outside the "
                 "regions), "
                 f"model {res.model}, pyramid level {res.level}, {res.seconds:.1f} s "
                 f"({res.megapixels_per_second:.2f} MP/s){extra} → {', '.join(map(str, res.files))}")
    return None


_WORKER_SEGMENTER: dict = {}


def dask_task(path: str, options: SegmentOptions, threads: int, outdir: str | None = None):
    """Run one input on a Dask worker (the model is loaded once per worker process)."""
    import torch

    torch.set_num_threads(max(1, threads))
    key = (options.model, options.device, options.backend, options.tta)
    if key not in _WORKER_SEGMENTER:
        _WORKER_SEGMENTER[key] = make_segmenter(options)
    try:
        return path, process_one(Path(path), options, _WORKER_SEGMENTER[key], Reporter(quiet=True), set(),
                                 outdir=Path(outdir) if outdir else None), None
    except PhenosegError as exc:
        return path, None, str(exc)


def _dask_client(options: SegmentOptions):
    """(client, local cluster or None, torch threads per task) for ``dask=``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise PhenosegError("dask= needs dask.distributed: pip install 'phenoseg[dask]'") from None
    if options.dask == "local":
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster, 1
    try:
        return Client(options.dask, timeout="30s"), None, options.threads_per_task
    except (OSError, TimeoutError) as exc:
        raise PhenosegError(f"dask={options.dask}: cannot reach the scheduler ({exc})") from None


def _run_dask_tiles(options: SegmentOptions, path: Path, reporter: Reporter, debug: bool) -> tuple[list, list]:
    """One slide: its tiles are segmented on the Dask workers and merged here."""
    from phenoseg.inference.tile_sources import dask_results

    client, cluster, threads = _dask_client(options)
    try:
        seg = make_segmenter(options)
        return run_each([path], lambda p: process_one(p, options, seg, reporter, set(),
                                                      dask_results(client, threads)), reporter, debug)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_dask(options: SegmentOptions, files: list[Path], reporter: Reporter, dirs: dict[Path, Path]
              ) -> tuple[list, list]:
    """Spread the inputs over Dask workers: a LocalCluster, or the scheduler at ``dask=ADDRESS``."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    client, cluster, threads = _dask_client(options)
    failures, reports = [], []
    quiet = dataclasses.replace(options, quiet=True)
    try:
        futures = [client.submit(dask_task, str(f), quiet, threads, str(dirs[f]), pure=False) for f in files]
        with tqdm(total=len(files), disable=options.quiet, unit="image", desc="images") as bar:
            for fut in as_completed(futures):
                try:
                    path, report, error = fut.result()
                except Exception as exc:  # a worker died or raised something unexpected
                    path, report, error = "?", None, f"{type(exc).__name__}: {exc}"
                if error:
                    failures.append((Path(path), error))
                    reporter.error(error)
                elif report is not None:
                    reports.append(report)
                bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failures, reports


def segment_batch(inputs: Sequence[str | os.PathLike], options: SegmentOptions | None = None,
                  reporter: Reporter | None = None, debug: bool = False) -> BatchResult:
    """Segment every input (files, folders, globs) and write its outputs; every input is tried, failures are
    collected (the others still run), and one ``report.html`` is written when asked for."""
    options = options or SegmentOptions()
    reporter = reporter or Reporter(options.quiet)
    found = find_inputs(inputs, options.recursive)
    files = [f for f, _ in found]
    dirs = plan_output_dirs(found, options.output_dir)  # collisions refused before anything is written
    created = missing_folders(Path(options.output_dir)) if options.output_dir else []
    check_options(options, files)
    kinds = parse_outputs(",".join(options.outputs) if options.outputs else DEFAULT_OUTPUTS)
    if options.dask and len(files) == 1 and slide_mode(files[0], options, make_segmenter(options), kinds):
        failures, reports = _run_dask_tiles(options, files[0], reporter, debug)
    elif options.dask:
        failures, reports = _run_dask(options, files, reporter, dirs)
    else:
        from tqdm import tqdm

        seg = make_segmenter(options)
        announced: set[str] = set()
        bar = tqdm(total=len(files), unit="image", desc="images", disable=options.quiet or len(files) < 2)

        def one(p: Path):
            try:
                return process_one(p, options, seg, reporter, announced, outdir=dirs[p])
            finally:
                bar.update(1)

        failures, reports = run_each(files, one, reporter, debug)
        bar.close()
    remove_empty(created)  # when every input failed, no empty output folder stays behind
    result = BatchResult(files, failures, reports)
    if reports and "report" in kinds:
        from phenoseg.io.report import write_report

        params = {"model": options.model, "pixel_size": options.pixel_size_um, "device": options.device,
                  "outputs": kinds, "tta": options.tta, "seed_threshold": options.seed_threshold,
                  "mask_threshold": options.mask_threshold, "min_area": options.min_area,
                  "regions": str(options.regions) if options.regions else None, "inputs": [str(f) for f in files],
                  "classify": options.classify, "min_detection_probability": options.min_detection_probability,
                  "positivity": options.positivity, "positivity_threshold": options.positivity_threshold}
        report_dir = Path(options.output_dir) if options.output_dir else files[0].parent / "phenoseg"
        result.report_path = write_report(report_dir / "report.html", reports, params,
                                          [(str(p), m) for p, m in failures])
        reporter.say(f"report: {result.report_path}")
    return result
