"""Synthetic data with known answers, for tests and benchmarks: nucleus labels and pictures
(:mod:`.nuclei`), whole cells around them (:mod:`.cells`) and ideal network outputs (:mod:`.ideal`)."""

from phenoseg.synthetic.cells import grow_cells, nuclei_and_cells, render_two_channel
from phenoseg.synthetic.ideal import ideal_model, ideal_output
from phenoseg.synthetic.nuclei import clean_labels, dense_labels, render_image, synthetic_labels

__all__ = ["clean_labels", "dense_labels", "grow_cells", "ideal_model", "ideal_output", "nuclei_and_cells",
           "render_image", "render_two_channel", "synthetic_labels"]
