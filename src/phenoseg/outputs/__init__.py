"""Writing results: every output of one image (:mod:`.image`) and the streamed parts of a slide
(:mod:`.slide`); all of them write from the per-object table."""

from phenoseg.outputs.image import DEFAULT_OUTPUTS, OUTPUT_KINDS, ObjectSet, parse_outputs, write_image_outputs

__all__ = ["DEFAULT_OUTPUTS", "OUTPUT_KINDS", "ObjectSet", "parse_outputs", "write_image_outputs"]
