"""lineinspect serving: registry, ONNX Runtime engine, batching, REST/gRPC edges, metrics."""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)
