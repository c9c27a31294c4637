"""The phenoseg dock widget: pick a layer and a model, Run (in a thread, with progress and Cancel), get Labels
layers with the per-object table as features, Save the CLI's outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from phenoseg.napari_plugin.job import Cancelled, JobRequest, JobResult, run_job, save_outputs
from phenoseg.napari_plugin.reader import class_colormap, features_frame

FOLDER = "model folder…"


def segmentation_models() -> list[str]:
    """The bundled segmentation models' names, "auto" first."""
    from phenoseg.models.zoo import bundled_model_dirs

    return ["auto", *sorted(bundled_model_dirs())]


class _Relay(QObject):
    """Carries progress from the worker thread to the widget (queued across threads)."""

    progressed = Signal(str, int, int)


class SegmentWidget(QWidget):
    """Segment (and classify) the image of a layer. ``napari_viewer``: the viewer (or a ``ViewerModel``)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result: JobResult | None = None
        self.source_name = ""
        self._cancel = False
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)

        self.layer_box = QComboBox()
        self.model_box = QComboBox()
        self.model_box.addItems([*segmentation_models(), FOLDER])
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("folder with config.json + weights.safetensors")
        self.model_path.setVisible(False)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setDecimals(4)
        self.pixel_size.setRange(0.0, 100.0)
        self.pixel_size.setSingleStep(0.05)
        self.pixel_size.setSpecialValueText("not set")
        self.pixel_size.setSuffix(" µm/px")
        self.channels = QLineEdit()
        self.channels.setPlaceholderText("auto (or names / indices: 0,2)")
        self.channels_first = QCheckBox("3-D layer is (C, Y, X) channels")
        self.want_nuclei = QCheckBox("nuclei")
        self.want_nuclei.setChecked(True)
        self.want_cells = QCheckBox("cells")
        self.want_cells.setChecked(True)
        self.want_classes = QCheckBox("classes (bundled H&&E classifier)")
        self.want_positivity = QCheckBox("marker positivity (every channel)")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.save_button = QPushButton("Save outputs…")
        self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image layer", self.layer_box)
        form.addRow("model", self.model_box)
        form.addRow("", self.model_path)
        form.addRow("pixel size", self.pixel_size)
        form.addRow("channels", self.channels)
        form.addRow("", self.channels_first)
        wants = QHBoxLayout()
        for box in (self.want_nuclei, self.want_cells):
            wants.addWidget(box)
        form.addRow("outputs", wants)
        form.addRow("", self.want_classes)
        form.addRow("", self.want_positivity)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.save_button)
        layout.addStretch()

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self._ask_save)
        self.model_box.currentTextChanged.connect(lambda t: self.model_path.setVisible(t == FOLDER))
        self.layer_box.currentTextChanged.connect(self._layer_changed)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # --- layers -------------------------------------------------------------------------------------
    def image_layers(self) -> list:
        """The viewer's image layers."""
        return [layer for layer in self.viewer.layers if layer.__class__.__name__ == "Image"]

    def _refresh_layers(self, *_) -> None:
        current = self.layer_box.currentText()
        names = [layer.name for layer in self.image_layers()]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._layer_changed(self.layer_box.currentText())

    def _layer_changed(self, name: str) -> None:
        layer = self._layer(name)
        if layer is None:
            return
        px = layer_pixel_size(layer)
        if px:
            self.pixel_size.setValue(px)

    def _layer(self, name: str):
        return next((layer for layer in self.image_layers() if layer.name == name), None)

    # --- running ------------------------------------------------------------------------------------
    def request(self) -> JobRequest:
        """What Run would compute, from the widget's fields."""
        layer = self._layer(self.layer_box.currentText())
        if layer is None:
            raise ValueError("no image layer: open an image first (File → Open, or File → Open Sample → phenoseg)")
        model = self.model_box.currentText()
        if model == FOLDER:
            model = self.model_path.text().strip()
            if not model:
                raise ValueError("model folder…: enter the folder of a model (config.json + weights.safetensors)")
        targets = tuple(t for t, box in (("nuclei", self.want_nuclei), ("cells", self.want_cells)) if box.isChecked())
        if not targets:
            raise ValueError("outputs: tick nuclei, cells or both")
        if getattr(layer, "multiscale", False):
            raise ValueError(f"layer '{layer.name}' is a multiscale (whole-slide) image: segment it with "
                             "`phenoseg segment SLIDE -o OUT` (tiled, resumable), then open OUT/*.ome.zarr here")
        data = layer.data
        return JobRequest(np.asarray(data), layer.name, rgb=bool(layer.rgb),
                          channels_first=self.channels_first.isChecked(),
                          channel_names=layer.metadata.get("channel_names"),
                          pixel_size_um=self.pixel_size.value() or None, model=model,
                          channels=self.channels.text().strip() or None, classify=self.want_classes.isChecked(),
                          positivity=self.want_positivity.isChecked(), targets=targets)

    def run(self) -> None:
        """Start the job in a napari thread worker (the viewer stays responsive)."""
        if self.worker is not None:
            return
        try:
            req = self.request()
        except ValueError as exc:
            self._fail(str(exc))
            return
        self._cancel = False
        self.source_name = req.layer_name
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.save_button.setEnabled(False)
        self.status.setText("starting…")
        self.progress.setRange(0, 0)  # busy until the first report
        relay = self._relay
        # superqt's worker, not napari's: napari's relays errors as traceback notifications; here they are
        # said in plain words by _on_error
        self.worker = create_worker(run_job, req, lambda s, d, t: relay.progressed.emit(s, d, t),
                                    lambda: self._cancel, _start_thread=False,
                                    _connect={"returned": self._on_done, "errored": self._on_error,
                                              "finished": self._on_finished})
        self.worker.start()

    def cancel(self) -> None:
        """Ask the running job to stop at its next step (between tiles on large images)."""
        if self.worker is not None:
            self._cancel = True
            self.status.setText("cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.status.setText(f"{stage} {done}/{total}" if total > 1 else stage)

    def _on_done(self, result: JobResult) -> None:
        self.result = result
        source = self._layer(self.source_name)
        scale = tuple(source.scale[-2:]) if source is not None else (1.0, 1.0)
        translate = tuple(source.translate[-2:]) if source is not None else (0.0, 0.0)
        counts = []
        for target, lab in result.labels.items():
            kwargs = {"name": f"{self.source_name} {target}", "scale": scale, "translate": translate,
                      "features": features_frame(result.tables[target]),
                      "metadata": {"phenoseg_model": result.model, "pixel_size_um": result.pixel_size_um}}
            if result.classes:
                kwargs["colormap"] = class_colormap(result.classes, result.class_colours)
            self.viewer.add_labels(lab, **kwargs)
            counts.append(f"{int(np.count_nonzero(np.bincount(lab.ravel())[1:]))} {target}")
        per_class = Counter(result.classes.values())
        classes = f": {', '.join(f'{c} {k}' for k, c in sorted(per_class.items()))}" if per_class else ""
        self.status.setText(f"{', '.join(counts)}{classes} (model {result.model}, {result.pixel_size_um:g} µm/px)"
                            + "".join(f"; {n}" for n in result.notes))
        self.save_button.setEnabled(True)
        for note in result.notes:
            show_warning(f"phenoseg: {note}")

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, Cancelled):
            self.status.setText("cancelled")
            show_info("phenoseg: cancelled")
            return
        self._fail(str(exc) if exc.__class__.__name__ == "PhenosegError" else f"{type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.result is not None and self.status.text() != "cancelled" else 0)

    def _fail(self, message: str) -> None:
        self.status.setText(message)
        show_error(f"phenoseg: {message}")

    # --- saving -------------------------------------------------------------------------------------
    def _ask_save(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save phenoseg outputs into")
        if folder:
            self.save(folder)

    def save(self, folder: str | Path) -> list[Path]:
        """Write the last result's outputs (as the CLI does) into ``folder``."""
        if self.result is None:
            self._fail("nothing to save yet: Run first")
            return []
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.source_name) or "image"
        try:
            written = save_outputs(self.result, folder, stem)
        except Exception as exc:  # a full disk, a read-only folder: said, not raised into Qt
            self._fail(f"could not save into {folder}: {exc}")
            return []
        show_info(f"phenoseg: wrote {len(written)} files into {folder}")
        return written


def layer_pixel_size(layer) -> float | None:
    """µm per pixel of a layer: its scale when set (not napari's default 1), else its metadata."""
    scale = tuple(float(s) for s in layer.scale[-2:])
    if scale[0] == scale[1] and scale[0] != 1.0 and scale[0] > 0:
        return scale[0]
    px = layer.metadata.get("pixel_size_um") if isinstance(layer.metadata, dict) else None
    return float(px) if px else None
