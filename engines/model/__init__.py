"""The CLIP model at work: loading it (hub), its preprocessing, the one embedder, ONNX Runtime, Ray."""
