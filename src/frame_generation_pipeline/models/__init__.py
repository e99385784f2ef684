"""Models: the U-Net and the ave audio encoder, their checkpoints, ONNX export, and the inference backends."""
