"""The HTML report: one self-contained page of a search's groups, to decide by looking. It never acts.

In: a finished search's groups and pairs (from the index), the index's vectors (compared again
past the threshold, writing nothing) and the original files (read for thumbnails, never
changed). Out: one HTML file that needs no server and no network, and a ``ReportSummary``.

    data     groups, and the threshold view (each image's nearest neighbour, the near misses)
    thumbs   one thumbnail per distinct content, fanned out through ``imgindex.workers``
    render   the page, from the Jinja2 templates in ``templates/`` (autoescaped, CSP by hash)
    write    ``write_report``: checks, the pieces above in order, an all-or-nothing file

Nothing is imported here, so ``import imgindex.report`` costs nothing until a report is written.
"""
