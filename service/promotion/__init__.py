"""Promotion: the policy applied to a gated candidate, the history of every alias move,
manual and automatic rollback (docs/learning.md, "Promotion, history and rollback").

Modules: :mod:`.spec` (settings), :mod:`.schema` (history table), :mod:`.history`
(``move_alias``, the one way an alias moves), :mod:`.policy` (``apply_policy``),
:mod:`.rollback` (manual rollback), :mod:`.band` and :mod:`.monitor` (automatic
rollback), :mod:`.shadow` (shadow criteria), :mod:`.loop` (the API's background task).
"""
