"""The autoencoder and its file: networks, normalisation inside the model, TorchScript and weights-only export, ONNX export and the per-worker model cache."""
