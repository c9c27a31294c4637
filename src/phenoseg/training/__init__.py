"""Training: datasets in the shared manifest layout, augmentations, losses, the trainer."""
