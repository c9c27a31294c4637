"""The optional per-object steps of `phenoseg segment` (classes, marker positivity), built from its options."""

from __future__ import annotations

import numpy as np

from phenoseg.errors import PhenosegError


def check_positivity_options(positivity: str | None, threshold: float | None) -> None:
    """Refuse a positivity threshold without positivity, or outside [0, 1]."""
    if threshold is None:
        return
    if not positivity:
        raise PhenosegError("positivity_threshold= needs positivity= (the model gives the probability)")
    if not 0.0 <= threshold <= 1.0:
        raise PhenosegError(f"positivity_threshold={threshold}: must be in [0, 1]")


def positivity_pass(model: str, device: str, image, threshold: float | None, where: str):
    """The positivity pass for an image read in memory (every measured channel scored); refuses RGB
    brightfield images, whose channels are colours, not markers."""
    from phenoseg.phenotype.positivity import PositivityPass, load_positivity

    if image.rgb:
        raise PhenosegError(f"{where}: positivity= scores the marker channels of fluorescence / multiplexed images; "
                            "this is an RGB (brightfield) image")
    return PositivityPass(load_positivity(model, device), None, threshold)


def image_steps(options, image, measured, labels: dict[str, np.ndarray], pixel_size_um: float, where: str
                ) -> tuple[dict[str, np.ndarray], list, int]:
    """(labels after a detection filter, the passes to run before the options' own, objects removed): the
    classifier reads ``image`` (every channel), positivity scores the channels of ``measured``."""
    passes, dropped = [], 0
    if options.classify:
        from phenoseg.phenotype.classify import classify_labels, load_classifier

        clf = load_classifier(options.classify, options.device, options.tta, image.data.shape[0])
        labels, cpass, dropped = classify_labels(clf, image.data, labels, pixel_size_um,
                                                 options.min_detection_probability)
        passes.append(cpass)
    if options.positivity:
        passes.append(positivity_pass(options.positivity, options.device, measured, options.positivity_threshold,
                                      where))
    return labels, passes, dropped
