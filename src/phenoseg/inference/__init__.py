"""Inference: preprocessing, the Segmenter, model choice."""
