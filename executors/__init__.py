"""Executors: consume request topics, run ONNX Runtime, emit lifecycle events."""
