"""The database schema, as an ordered set of sqlite-utils migrations.

Applied automatically when an index is opened (see ``imgindex.store``). Each migration and the
record of it run in one transaction, so a crash mid-upgrade leaves the previous schema intact.
Add new steps at the end of ``steps.py``; never edit or reorder a step that has shipped.
"""

from .steps import MIGRATIONS

__all__ = ["MIGRATIONS"]
