"""The Redis-stream frame queue (``queue=redis``): API instances in front, workers behind.

Data flow (keys under ``settings.redis_prefix``, default ``lineinspect``):

* ``<prefix>:frames`` — the frame stream. An API instance appends one entry per frame
  (encoded bytes, metadata, wall-clock deadline, a unique request id ``rid`` and the
  name of its reply stream) with a Lua script that refuses the append when the stream
  already holds ``redis_stream_maxlen`` entries (→ ``QueueFull``, 429). Answered
  entries are acknowledged *and deleted*, so the stream length is exactly the backlog
  (waiting + being processed) and nothing unanswered is ever trimmed.
* Consumer group ``redis_group``: workers (``lineinspect worker infer``) read with
  XREADGROUP and push every frame through the same :class:`service.inspector.Inspector`
  (decode, dynamic batching, post-processing) as the in-process service. Entries left
  pending by a dead worker are taken over with XAUTOCLAIM after
  ``redis_reclaim_idle_ms``.
* Delivery is one Lua script per frame: ``SET <prefix>:done:<rid> NX`` guards a single
  answer; only the first delivery appends the reply to ``<prefix>:replies:<instance>``
  (the waiting API instance's own stream, bounded and expiring) and the record to
  ``<prefix>:results`` (bounded audit trail). The frame is XACKed and XDELed in the
  same script, so acknowledgement happens only with (or after) delivery, and a
  redelivered frame never yields a second answer.
* The API instance reads its reply stream with one blocking XREAD loop and resolves the
  waiting request; past the frame's deadline it answers 504 itself.
"""
