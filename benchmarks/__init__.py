"""Benchmarks (not tests): each compares served throughput with raw ONNX Runtime in one run."""
