"""Training the crop classifier."""
