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
  (decode, dynamic batching, post-processing) as the in-process service. Each worker
  heartbeats ``<prefix>:alive:<consumer>``; the frames of a worker whose heartbeat
  lapsed are claimed by the others within ``redis_heartbeat_ttl_ms`` or so
  (:mod:`service.queue.liveness`), frames idle for ``redis_reclaim_idle_ms`` are
  claimed as a backstop, and a frame delivered ``redis_dead_letter_after`` times to
  workers that all died goes to ``<prefix>:dead``, answered with an error.
* Delivery is one Lua script per frame: ``SET <prefix>:done:<id> NX`` (holding the
  answer) guards a single answer per frame identity (frame id, model, bytes; see
  :func:`service.queue.codec.frame_identity`): only the first delivery appends the
  record to ``<prefix>:results`` (bounded audit trail); every requester of that frame,
  a client's retry included, gets the stored answer on ``<prefix>:replies:<instance>``
  (its API instance's own stream, bounded and expiring). Error answers are kept per
  request, so a retry after an error is inspected afresh. The frame is XACKed and
  XDELed in the same script, so acknowledgement happens only with (or after) delivery,
  and a redelivered frame never yields a second answer.
* The API instance reads its reply stream with one blocking XREAD loop and resolves the
  waiting request; past the frame's deadline it answers 504 itself, and when the reader
  loses Redis every frame in flight is answered 503 at once (retry with the same id).
"""
