"""Exporting models: a whole-pipeline TorchScript file that runs with LibTorch alone."""
