"""gRPC edge: ``lineinspect.v1`` inspection (unary + flow-controlled streaming) and the
KServe v2 ``inference.GRPCInferenceService``, served by ``grpc.aio`` in the same event
loop as the REST app (shared AppContext, backend and batcher). Stubs generated from
proto/ live in ``service.grpc.generated`` (``make proto``)."""
