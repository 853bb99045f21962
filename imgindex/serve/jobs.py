"""Plans shown to the user, and the one action at a time that carries a plan out in the background.

A plan is made (``Index.plan_*``) when the page asks, kept here under a random id and shown;
carrying it out is a second request naming that id, so what runs is exactly what was shown
(and ``apply`` re-checks every file and decision before touching it). Progress is polled.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from imgindex.api import Index
from imgindex.errors import ImgIndexError
from imgindex.types import ActionPlan, ActionProgress

PLAN_TTL = 600.0  # seconds a plan shown may still be carried out


@dataclass
class Job:
    job_id: str
    command: str
    planned: int
    done: int = 0
    status: str = "running"  # running | completed | failed | interrupted
    message: str | None = None
    run_id: int | None = None
    outcomes: dict = field(default_factory=dict)  # outcome -> count

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in ("job_id", "command", "planned", "done", "status", "message", "run_id",
                                              "outcomes")}


class Jobs:
    def __init__(self, db_path: str):
        self.db_path = db_path
        self.lock = threading.Lock()
        self.plans: dict[str, tuple[float, ActionPlan]] = {}
        self.job: Job | None = None
        self.thread: threading.Thread | None = None

    def keep_plan(self, plan: ActionPlan) -> str:
        plan_id = secrets.token_urlsafe(16)
        with self.lock:
            now = time.monotonic()
            self.plans = {k: v for k, v in self.plans.items() if now - v[0] < PLAN_TTL}
            self.plans[plan_id] = (now, plan)
        return plan_id

    def start(self, plan_id: str) -> Job:
        """Carry out a plan shown before; one action at a time."""
        with self.lock:
            if self.job is not None and self.job.status == "running":
                raise ImgIndexError("An action is running: wait for it to finish.")
            entry = self.plans.pop(plan_id, None)
            if entry is None or time.monotonic() - entry[0] >= PLAN_TTL:
                raise ImgIndexError("This plan is unknown or too old: look at the plan again.")
            plan = entry[1]
            self.job = Job(secrets.token_urlsafe(8), plan.command, len(plan.actions))
            job = self.job
        self.thread = threading.Thread(target=self._run, args=(job, plan), name="imgindex-action", daemon=True)
        self.thread.start()
        return job

    def _run(self, job: Job, plan: ActionPlan) -> None:
        def progress(p: ActionProgress) -> None:
            job.done = p.done

        try:
            with Index(self.db_path) as index:
                report = index.apply(plan, progress=progress)
            job.run_id = report.run_id
            for o in report.outcomes:
                job.outcomes[o.outcome] = job.outcomes.get(o.outcome, 0) + 1
            job.status = "completed"
        except Exception as exc:  # shown on the page; the journal settles what was in hand
            job.status, job.message = "failed", str(exc)

    def wait(self, timeout: float = 30.0) -> None:
        """For shutdown: let the action in hand finish its file."""
        if self.thread is not None:
            self.thread.join(timeout)
