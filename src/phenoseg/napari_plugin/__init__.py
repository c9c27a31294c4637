"""phenoseg's napari plugin (``pip install "phenoseg[napari]"``): a reader for phenoseg's outputs, a dock widget
that segments and classifies the image of a layer, and the bundled example images as sample data.

Registered through the npe2 manifest ``napari.yaml`` beside this file. ``import phenoseg`` and the CLI never
import this package (nor napari or Qt); :mod:`.job` and :mod:`.reader` hold the work and need no Qt.
"""
