"""The verdict audit trail: which model version, with which thresholds, answered what
for every frame, on every edge.

An observer (:mod:`service.audit.audit`) queues each answered frame on the event loop;
one writer thread (:mod:`service.audit.writer`) hashes the images and writes the rows in
insert-or-ignore batches to the store's database (:mod:`service.audit.trail`, table in
:mod:`service.audit.schema`), applying retention; :mod:`service.audit.queries` reads
them for ``GET /v1/audit``, ``GET /v1/lines`` (:mod:`service.audit.api`) and
``lineinspect audit`` (:mod:`service.audit.cli`). See docs/audit.md.
"""
