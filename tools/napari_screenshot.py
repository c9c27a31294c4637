"""The README's napari screenshot: the H&E sample, the phenoseg dock widget after a run with classes.

Needs a display: `xvfb-run -a .venv/bin/python tools/napari_screenshot.py docs/images/napari_widget.png`
"""

from __future__ import annotations

import sys

import napari
from qtpy.QtWidgets import QApplication


def main(out: str) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.open_sample("phenoseg", "he")
    _, widget = viewer.window.add_plugin_dock_widget("phenoseg", "Segment and classify")
    widget.want_classes.setChecked(True)
    widget.run()
    app = QApplication.instance()
    while widget.worker is not None:
        app.processEvents()
    viewer.reset_view()
    app.processEvents()
    viewer.screenshot(out, canvas_only=False)
    print("wrote", out, "-", widget.status.text())
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/napari_widget.png")
