"""The kill points the torture run covered: how many kills landed in each phase of each command."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, config):
    points = getattr(config, "torture_kill_points", None)
    if not points:
        return
    terminalreporter.section("torture: kills by phase")
    for point, count in sorted(points.items()):
        terminalreporter.write_line(f"{count:6d}  {point}")
    terminalreporter.write_line(f"{sum(points.values()):6d}  kills in all")
