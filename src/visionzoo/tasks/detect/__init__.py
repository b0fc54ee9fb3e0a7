"""Object detection and instance segmentation: train, predict, evaluate (issue 9)."""
