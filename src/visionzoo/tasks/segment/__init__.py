"""Semantic segmentation (U-Net, DeepLabV3+, FPN): train, predict, evaluate (issue 10)."""
