"""Shadow serving (docs/learning.md, "Shadow serving"): a lineage's shadow version runs
on a fraction of live frames after the production answer, and is compared with it.

``ShadowSummary`` (service.shadow.summary) is what the promotion policy reads, through
``app.state.shadow.summary(name)``.
"""
