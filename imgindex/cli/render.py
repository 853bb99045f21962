"""How the CLI writes what the API returns: scan summaries, result tables/JSON/CSV, status, plans."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import shlex
from collections import Counter
from datetime import datetime

import click

from imgindex.humanize import human_bytes
from imgindex.types import (
    ActionPlan,
    ActionReport,
    BatchReport,
    CheckReport,
    Decision,
    DecisionReport,
    GroupRow,
    ReportSummary,
    ScanReport,
    SearchReport,
    Status,
)

SHOWN_ERRORS = 10
PLAN_PREVIEW = 10


def shown(path: str) -> str:
    """A path as one printable line (newlines and undecodable bytes escaped)."""
    return path if path.isprintable() else json.dumps(path)


# ---------------------------------------------------------------- scan and search


def scan_summary(report: ScanReport, db_path, images: int, file=None) -> None:
    echo = functools.partial(click.echo, file=file)
    verb = "Scanned" if report.status == "completed" else f"Scan {report.status}:"
    echo(f"{verb} {', '.join(report.roots)} into {db_path} in {report.duration:.1f} s" + _on_cluster(report))
    rows = [
        ("files seen", report.seen, ""),
        ("new", report.added, f"{report.reused:,} were byte copies: stored tensor reused" if report.reused else ""),
        ("changed", report.updated, "re-read"),
        ("moved/renamed", report.moved, "recognised by content, not decoded again"),
        ("unchanged", report.unchanged, "not opened"),
        ("removed", report.removed, "no longer on disk"),
        ("skipped", report.skipped, skipped_kinds(report)),
        ("failed", report.failed, "see the scan_errors table" if report.failed else ""),
        ("decoded", report.decoded, time_spent(report)),
    ]
    for label, value, note in rows:
        echo(f"  {label:<15}{value:>10,}" + (f"   {note}" if note and value else ""))
    for folder in report.unlisted_folders:
        echo(f"  ! {folder.path}: {folder.message}")
    if report.errors:
        echo(f"Files that could not be read (first {min(SHOWN_ERRORS, len(report.errors))} of {len(report.errors):,}):")
        for err in report.errors[:SHOWN_ERRORS]:
            echo(f"  {err.path}: {err.message}")
    echo(f"The index holds {images:,} images.")


def time_spent(report: ScanReport) -> str:
    """Where the reading time went: the CPU the decoding took, and what else the reading processes did."""
    t = report.timings
    if t is None or not report.decoded:
        return ""
    where = f"in {report.workers} processes" if report.workers else "here"
    return f"{t.decode:.1f} s of CPU {where}; hashing {t.hash:.1f} s, search keys {t.keys:.1f} s, writes {t.write:.1f} s"


def skipped_kinds(report: ScanReport) -> str:
    """What the skipped files were, by kind, most first: a folder of videos is never "clean" by silence."""
    kinds = Counter(s.reason for s in report.skipped_files)
    return "; ".join(f"{n:,} {reason}" for reason, n in kinds.most_common()) or "not image files, symlinks, special files"


def signal_limits(signals: dict[str, float] | None, threshold: float) -> str:
    """'MSE <= 6 or tone <= 0.02 or ...': what made a pair (a search before signals existed: pixels)."""
    signals = dict(signals or {"pixels": threshold})
    motion = signals.pop(SearchReport.MOTION_KEY, None) is not None
    limits = " or ".join(f"MSE <= {v:g}" if k == "pixels" else f"{k} <= {v:g}" for k, v in signals.items())
    return limits + (", unless moved" if motion else "")


def search_summary(report: SearchReport, profile=None) -> None:
    how = f"incremental: {report.new_images:,} new" if report.incremental else f"{report.algorithm}"
    aside = f"; {report.set_aside:,} more set aside by decisions" if report.set_aside else ""
    aside += f"; {report.moved:,} close pairs set aside as moved (two shots)" if report.moved else ""
    click.echo(
        f"Search {report.search_id}: {report.pairs:,} matching pairs in {report.groups:,} groups among "
        f"{report.images:,} images ({signal_limits(report.signals, report.threshold)}; {how}{aside})"
        f" in {report.duration:.1f} s"
        + _on_cluster(report),
        err=True,
    )
    if report.left_out:
        click.echo(
            f"Note: the {' and '.join(report.left_out)} signals were left out: they search this many images"
            f" ({report.images:,}) too slowly today. Ask for them by name to run them anyway"
            f" (--signals {','.join(['pixels', *report.left_out, 'trimmed'])}).", err=True)
    if report.unchecked:
        click.echo(
            f"Note: {report.unchecked:,} images were indexed before borders (letterbox bars, mats) were looked for;"
            " the 'trimmed' signal skips them until `imgindex scan FOLDER --refresh-signals` decodes them again.",
            err=True)
    if report.off_profile and profile is not None:
        click.echo(
            f"Note: this search's settings ({', '.join(report.off_profile)}) differ from the index's profile"
            f" ({profile_line(profile)}). The match_pairs and match_groups views now show this search; the"
            " watcher and later searches use the profile again. To keep these settings, add --save-profile"
            " (or use imgindex config).", err=True)


def refresh_line(report) -> str:
    """What ``scan --refresh-signals`` did, in one line."""
    return (f"Looked for borders in {report.looked_at:,} images indexed before they were: {report.framed:,} framed"
            + (f", {report.skipped:,} changed since (the next scan reads them)" if report.skipped else "")
            + f", in {report.duration:.1f} s")


def write_json(result: dict, output) -> None:
    json.dump(result, output, indent=2, ensure_ascii=False)
    output.write("\n")


def write_csv(rows: list[GroupRow], output) -> None:
    writer = csv.DictWriter(output, fieldnames=[f.name for f in dataclasses.fields(GroupRow)])
    writer.writeheader()
    writer.writerows(dataclasses.asdict(row) for row in rows)


KEPT_BECAUSE = {"rule": "", "pinned": ", pinned", "reference": ", reference folder"}


def write_table(rows: list[GroupRow], output) -> None:
    for row in rows:
        size = f"{row.width}x{row.height}, {row.size:,} B"
        why = KEPT_BECAUSE.get(row.keep_reason or "", "")
        if row.is_keeper:
            output.write(f"\nGroup {row.group_id}\n  keep  {row.path}  ({size}{why})\n")
        else:
            turn = f", turned {row.rotation}°" if row.rotation else ""
            flip = ", mirrored" if row.mirrored else ""
            label = "keep" if row.keep_reason else "dup "
            output.write(f"  {label}  {row.path}  ({size}; MSE {row.mse_to_keeper:.3g}{turn}{flip}{why})\n")


# ---------------------------------------------------------------- decisions and the profile

DECISION_KINDS = {"not-duplicates": "not duplicates", "keep": "pinned keeper", "reference": "reference folder"}
COUNTED = {"not-duplicates": ("pair not duplicates", "pairs not duplicates"), "keep": ("pinned keeper", "pinned keepers"),
           "reference": ("reference folder", "reference folders")}


def decision_line(d: Decision) -> str:
    note = f"  ({d.note})" if d.note else ""
    return f"  #{d.id:<5} {DECISION_KINDS[d.kind]:<17} {d.created_at[:19]}  {'  <->  '.join(map(shown, d.paths))}{note}"


def decision_report(report: DecisionReport | None) -> None:
    if report is None:
        return
    verb = "Took back" if report.removed else "Recorded"
    changed = report.removed or report.added
    click.echo(f"{verb} {len(changed):,} decision{'s' * (len(changed) != 1)} (table decisions):")
    for d in changed:
        click.echo(decision_line(d))
    for d in report.replaced:
        click.echo(f"  replacing #{d.id} of {d.created_at[:19]}: {'  <->  '.join(map(shown, d.paths))}")
    if report.unchanged:
        click.echo(f"Already decided, unchanged ({len(report.unchanged):,}):")
        for d in report.unchanged:
            click.echo(decision_line(d))
    for note in report.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo("No search yet: the first search applies them." if report.groups is None else
               f"The latest search's groups are updated: {report.groups:,} groups (the match_groups view).")


def decision_list(found: list[Decision], what: str) -> None:
    click.echo(f"{len(found):,} {what} in force:" if found else f"No {what} recorded.")
    for d in found:
        click.echo(decision_line(d))


def profile_line(profile) -> str:
    """'similar (MSE 6), rotations, same dimensions only; keeper: resolution,size,path'."""
    signals = profile.chosen_signals
    others = [s for s in signals if s != "pixels"]
    how = f"{profile.similarity} (MSE {profile.threshold:g})" if "pixels" in signals else f"{profile.similarity}"
    how += (" or " if "pixels" in signals else " (by ") + "/".join(others) + ("" if "pixels" in signals else ")") \
        if others else ""
    parts = [how, "rotations" if profile.rotate else "no rotations"]
    parts += ["mirrored"] if profile.mirror else []
    parts.append("same dimensions only" if profile.same_dim else "any dimensions")
    keep = ",".join(profile.keep) + (f" preferring {', '.join(profile.prefer_folders)}" if profile.prefer_folders
                                     else "")
    return ", ".join(parts) + f"; keeper: {keep}"


def profile_lines(profile) -> None:
    click.echo("Search profile: " + (profile_line(profile) if profile else "none yet (the first search sets it)"))


# ---------------------------------------------------------------- status and the watcher


def _on_cluster(report) -> str:
    return f", on {report.executor}" if report.executor.startswith("dask") else ""


def _ran_on(run: dict) -> str:
    return f", on {run['executor']}" if run.get("executor") else ""


def status_lines(st: Status, db_path) -> list[str]:
    lines = [f"Index {db_path}: {st.images:,} images (tensors {st.px_size or '-'} px), "
             f"{st.errors:,} files could not be read (table scan_errors)"]
    s = st.last_scan
    lines.append("Last scan: none yet (imgindex scan DIR)" if not s else
                 f"Last scan: #{s['id']} {s['status']}, started {s['started_at']}: +{s['added']} new, "
                 f"{s['updated']} changed, {s['moved']} moved, {s['removed']} removed, {s['failed']} failed"
                 + _ran_on(s))
    s = st.last_search
    lines.append("Matches: no search yet (imgindex search)" if not s else
                 f"Matches: search #{s['id']} ({s['similarity']}, "
                 f"{signal_limits(json.loads(s['signals']) if s.get('signals') else None, s['threshold'])})"
                 f" at {s['finished_at']}: "
                 f"{s['pairs']:,} pairs in {s['groups']:,} groups among {s['images']:,} images" + _ran_on(s))
    if st.profile is not None:
        lines.append("Search profile: " + profile_line(st.profile))
    if st.decisions:
        counts = ", ".join(f"{st.decisions[k]:,} {COUNTED[k][st.decisions[k] != 1]}" for k in COUNTED
                           if st.decisions.get(k))
        lines.append(f"Decisions: {counts} (imgindex decisions)")
    a = st.last_action
    if a:
        what = a["command"] + (f" {a['destination']}" if a["destination"] else "") + (
            " --permanent" if a["permanent"] else "")
        lines.append(f"Last action: run {a['id']} ({what}) {a['status']}, started {a['started_at']}: {a['done']} done, "
                     f"{a['skipped']} left alone, {a['failed']} failed (table actions; imgindex undo puts it back)")
    w = st.watcher
    if w is None:
        lines.append("Watcher: not running")
    elif w.running:
        lines.append(f"Watcher: running, pid {w.pid} on {w.host} since {w.started_at}; {w.batches} batches, "
                     f"{w.pending} files settling, last heartbeat {w.seconds_since_heartbeat:.0f} s ago")
    else:
        lines.append(f"Watcher: not running (pid {w.pid} stopped without cleaning up at {w.heartbeat_at}; "
                     "the next watch repairs the index)")
    return lines


def check_lines(report: CheckReport) -> list[str]:
    lines = [f"  repaired: {what}" for what in report.repaired]
    for f in report.findings:
        fix = " (imgindex check --repair fixes it)" if f.repairable else ""
        lines.append(f"  PROBLEM {f.name}: {f.count:,} {f.message}{fix}")
    verdict = "OK: every invariant holds" if report.ok else f"{len(report.findings)} problem(s)"
    return [f"Checked {report.images:,} images in {report.seconds:.1f} s: {verdict}.", *lines]


def batch_line(r: BatchReport) -> str:
    off = f"; its {', '.join(r.off_profile)} differ from the index's profile" if r.off_profile else ""
    return (f"{r.reason}: +{r.added} new, {r.updated} changed, {r.moved} moved, {r.removed} removed, "
            f"{r.failed} failed; {r.new_pairs} new pairs ({r.pairs} pairs in {r.groups} groups) in {r.duration:.2f} s"
            f"{off}")


def log_line(stream, text: str) -> None:
    stream.write(f"{datetime.now().isoformat(sep=' ', timespec='seconds')} {text}\n")
    stream.flush()


# ---------------------------------------------------------------- actions and the report


def plan(plan_: ActionPlan, question: str, *, full: bool) -> None:
    listed = plan_.actions if full else plan_.actions[:PLAN_PREVIEW]
    click.echo(("Plan (dry run, nothing changes): " if full and plan_.actions else "") + question + ".")
    for a in listed:
        arrow = f" -> {shown(a.destination)}" if a.destination else ""
        click.echo(f"  {a.kind:<9} {shown(a.source)}{arrow}")
    if len(plan_.actions) > len(listed):
        click.echo(f"  ... and {len(plan_.actions) - len(listed):,} more (--dry-run lists them all)")
    if plan_.skipped:
        click.echo(f"Left alone ({len(plan_.skipped):,}):")
        for s in plan_.skipped:
            click.echo(f"  {shown(s.path)}: {s.reason}")


def action_report(report: ActionReport, db_path) -> None:
    verbs = {"move-to": "Moved", "delete": "Deleted", "undo": "Put back"}
    click.echo(f"{verbs[report.command]} {report.done:,} files; {report.skipped:,} left alone, "
               f"{report.failed:,} failed ({report.duration:.1f} s). Journaled as run {report.run_id} "
               "in the actions table.")
    for o in report.outcomes:
        if o.outcome != "done":
            click.echo(f"  {o.outcome}: {shown(o.source)}: {o.message}", err=True)
    for o in report.recovered:
        click.echo(f"  an interrupted earlier run: {shown(o.source)} {o.message}", err=True)
    if report.reindexed:
        click.echo(f"{report.reindexed:,} files put back were indexed again.")
    if report.command != "undo" and report.done:
        click.echo(f"Undo with: imgindex undo --db {shlex.quote(str(db_path))}")


def report_summary(summary: ReportSummary) -> None:
    more = "" if summary.groups_shown == summary.groups else f" (showing {summary.groups_shown:,})"
    click.echo(f"Report: {summary.output} ({human_bytes(summary.size_bytes)}): {summary.groups:,} groups{more}, "
               f"{summary.images:,} images, {human_bytes(summary.bytes_reclaimable)} reclaimable; "
               f"{summary.near_misses:,} near misses up to MSE {summary.histogram_cap:g}; "
               f"{summary.missing:,} originals could not be shown. Nothing was changed.")
    click.echo("Open it in a browser. To act on the lower-quality images, look at the plan first:")
    for command in summary.next_commands:
        click.echo(f"  {command}")
