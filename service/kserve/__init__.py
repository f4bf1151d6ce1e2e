"""KServe v2 / Open Inference Protocol: tensors and the model surface shared by the
gRPC (service/grpc/kserve.py) and HTTP (service/api/kserve.py) edges."""
