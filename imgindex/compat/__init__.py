"""Compatibility layers over the ``Index`` API.

In: calls shaped like another tool's API (difpy: difPy 4's ``build`` and ``search``). Out: results
in that tool's shapes (``result``, ``lower_quality``, ``stats``), computed by the facade.
"""
