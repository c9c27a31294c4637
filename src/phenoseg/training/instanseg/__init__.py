"""InstanSeg training: data (one label map per target), seed targets, augmentations, losses, the objective."""
