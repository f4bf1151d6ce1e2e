"""Access control: bearer tokens with scopes, checked once per edge.

* :mod:`service.auth.tokens` — scopes, the token settings entry, hashing, verification.
* :mod:`service.auth.policy` — the one table mapping every HTTP route and gRPC method
  to the scope it needs (how a new route declares its scope is described there).
* :mod:`service.auth.http` / :mod:`service.auth.grpc` — the checks at each edge.
* :mod:`service.auth.cli` — ``lineinspect token new``.
"""
