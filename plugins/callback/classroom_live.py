# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The classroom's live page: every lab's progress, written while the playbook runs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: classroom_live
type: aggregate
short_description: Write the classroom's live page (each lab's stage, done or failed, elapsed) during a run
version_added: 1.0.0
description:
  - Loaded from C(callbacks_enabled) in C(ansible.cfg) (the project's lists it), it stays asleep until a play of the
    running playbook sets the play variable C(classroom_live_page=true) (C(classroom.yml), C(classroom-status.yml),
    C(reset-chapter.yml), C(reset-cluster.yml) and C(check.yml) do), or the playbook is C(check.yml) (the exercise
    check, a classroom run like the others); any other playbook writes nothing. In check mode it writes nothing.
  - From then on it writes C(live.json) (the state, one entry per lab of the group C(labs), with the stage it is in,
    each stage's result, the failure's one-line reason and the elapsed time, and the class totals), C(live.js) (the
    same data for a page opened as a file) and C(status.html) (the page, which reads them and refreshes itself) in
    the status folder, at most once a second and at the end of the run. Every file is written to a temporary file
    and renamed, so a reader never sees half a file.
  - The status folder is the extra variable C(classroom_status_dir) when given, else C(artifacts/classroom) next to
    the playbook's folder, where the role M(istio_lab.lab.classroom_status) writes the status page.
  - A play's stage is its variable C(classroom_live_stage), else the play's name. A machine of a lab's cluster
    (inventory variable C(cluster_lab)) counts for that lab.
  - Each lab's entry also carries its exercise checks (C(exercises)), read at each write from the files C(check.yml)
    writes, C(<report dir>/<lab>/check-<chapter>.json), so the page's exercise columns fill in as the labs are
    checked. The report directory is the extra variable C(lab_verify_report_dir) when given, else C(artifacts) next
    to the playbook's folder.
  - The state file's fields are described in C(docs/classroom.md).
requirements:
  - "Listed in C(callbacks_enabled) (C(ansible.cfg)) or C(ANSIBLE_CALLBACKS_ENABLED=istio_lab.lab.classroom_live)."
"""

import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime

from ansible import context
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.callback import CallbackBase
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.check_files import read_checks

FORMAT = 1
# Seconds between two writes of the state while events arrive (30 labs send many).
WRITE_INTERVAL = 1.0
REASON_LENGTH = 200
# Playbooks followed without the play variable: the exercise check, however its plays are written.
LIVE_PLAYBOOKS = frozenset({"check.yml"})
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles", "classroom_status", "files",
                    "status.html")


def _iso(stamp):
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") if stamp else None


def one_line(text, length=REASON_LENGTH):
    """The first non-empty line of a message, cut to `length` characters."""
    for line in str(text or "").splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= length else line[: length - 1] + "\u2026"
    return ""


def failure_reason(result):
    """One line saying why a task failed: its message, or the first failed item's in a loop."""
    if not isinstance(result, dict):
        return one_line(result)
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            reason = failure_reason(item)
            if reason:
                return reason
    for key in ("msg", "stderr", "module_stderr", "reason"):
        if result.get(key):
            return one_line(result[key])
    return "failed"


def write_atomic(path, data):
    """Write `data` (bytes) to a temporary file beside `path`, then rename it over `path`."""
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class LiveState:
    """The run's state, as written to live.json (see docs/classroom.md)."""

    def __init__(self, playbook, inventory, labs, names):
        self.playbook = playbook
        self.inventory = inventory
        self.started = time.time()
        self.finished = None
        self.stages = []
        self.stage = ""
        self.labs = {lab: {"lab": lab, "name": names.get(lab, ""), "state": "waiting", "stage": "", "stages": {},
                           "task": "", "reason": "", "started": None, "ended": None} for lab in labs}

    def start_stage(self, stage):
        if stage == self.stage:
            return
        self.end_stage()
        self.stage = stage
        if stage not in self.stages:
            self.stages.append(stage)

    def end_stage(self):
        """The stage is over: a lab that ran it without failing is done with it."""
        for lab in self.labs.values():
            state = lab["stages"].get(self.stage)
            if state in ("running", "ran"):
                lab["stages"][self.stage] = "done"
            elif state == "waiting":
                lab["stages"][self.stage] = "skipped"

    def task_started(self, lab, task):
        entry = self.labs[lab]
        if entry["state"] == "failed":
            return
        now = time.time()
        entry["started"] = entry["started"] or now
        entry.update(state="running", stage=self.stage, task=task)
        entry["stages"].setdefault(self.stage, "waiting")

    def task_ran(self, lab):
        entry = self.labs[lab]
        if entry["stages"].get(self.stage) in ("waiting", None) and entry["state"] != "failed":
            entry["stages"][self.stage] = "ran"

    def task_failed(self, lab, task, reason):
        entry = self.labs[lab]
        if entry["state"] == "failed":
            return
        now = time.time()
        entry["started"] = entry["started"] or now
        entry.update(state="failed", stage=self.stage, task=task, reason=reason, ended=now)
        entry["stages"][self.stage] = "failed"

    def finish(self):
        self.finished = time.time()
        self.end_stage()
        for entry in self.labs.values():
            if entry["state"] != "failed":
                entry["state"] = "done" if entry["started"] else "not run"
                entry["ended"] = entry["ended"] or (self.finished if entry["started"] else None)
                entry["task"] = ""

    def as_dict(self, exercises=None):
        """The state; `exercises`: each lab's exercise checks as read now ({lab: [cell]}, check_files.read_checks)."""
        now = self.finished or time.time()
        labs = []
        for entry in self.labs.values():
            row = {key: value for key, value in entry.items() if key not in ("started", "ended")}
            row["exercises"] = (exercises or {}).get(entry["lab"], [])
            row["stages"] = {stage: ("running" if state in ("waiting", "ran") else state)
                             for stage, state in entry["stages"].items()}
            row["started_at"] = _iso(entry["started"])
            row["elapsed_s"] = round((entry["ended"] or now) - entry["started"]) if entry["started"] else 0
            labs.append(row)
        totals = {"labs": len(labs)}
        for state in ("waiting", "running", "done", "failed", "not run"):
            totals[state.replace(" ", "_")] = sum(1 for row in labs if row["state"] == state)
        return {
            "format": FORMAT,
            "playbook": self.playbook,
            "inventory": self.inventory,
            "state": "finished" if self.finished else "running",
            "started_at": _iso(self.started),
            "updated_at": _iso(time.time()),
            "finished_at": _iso(self.finished),
            "elapsed_s": round(now - self.started),
            "stage": self.stage,
            "stages": list(self.stages),
            "totals": totals,
            "labs": labs,
        }


class CallbackModule(CallbackBase):
    """Write the live page once a play asks for it (classroom_live_page)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "istio_lab.lab.classroom_live"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._playbook = None
        self._state = None
        self._folder = None
        self._reports = None
        self._checks = {}  # lab -> (its report folder's mtime, its exercise cells)
        self._lab_of = {}
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._writer = None

    # --- activation -------------------------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.abspath(playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        if self._state is None and not self._activate(play):
            return
        with self._lock:
            self._state.start_stage(str(play.vars.get("classroom_live_stage") or play.get_name() or "play"))
        self._write()

    def _activate(self, play):
        try:
            wanted = boolean(play.vars.get("classroom_live_page", False), strict=False)
        except TypeError:
            wanted = False
        wanted = wanted or os.path.basename(self._playbook or "") in LIVE_PLAYBOOKS
        if not wanted or context.CLIARGS.get("check"):
            return False
        variables = play.get_variable_manager()
        inventory = variables._inventory
        self._folder = self._extra_folder(play, variables, "classroom_status_dir", ("artifacts", "classroom"))
        self._reports = self._extra_folder(play, variables, "lab_verify_report_dir", ("artifacts",))
        labs = [host.name for host in inventory.get_hosts("labs")]
        names, lab_of = {}, {lab: lab for lab in labs}
        for host in inventory.get_hosts("all"):
            host_vars = host.get_vars()
            if host.name in lab_of:
                names[host.name] = str(host_vars.get("classroom_student_name") or "")
            elif host_vars.get("cluster_lab") in lab_of:
                lab_of[host.name] = host_vars["cluster_lab"]
        self._lab_of = lab_of
        sources = [str(source) for source in context.CLIARGS.get("inventory") or []]
        self._state = LiveState(os.path.basename(self._playbook or ""), sources, labs, names)
        os.makedirs(self._folder, exist_ok=True)
        self._copy_page()
        self._writer = threading.Thread(target=self._write_loop, name="classroom-live", daemon=True)
        self._writer.start()
        return True

    def _extra_folder(self, play, variables, name, default):
        """The folder an extra variable names (templated), else `default` under the playbook folder's parent."""
        folder = variables.extra_vars.get(name)
        if folder and "{{" in str(folder):
            from ansible.template import Templar

            folder = Templar(loader=play._loader, variables=variables.get_vars(play=play)).template(folder)
        if not folder:
            folder = os.path.join(os.path.dirname(self._playbook or "."), "..", *default)
        return os.path.realpath(os.path.expanduser(str(folder)))

    def _copy_page(self):
        target = os.path.join(self._folder, "status.html")
        with open(PAGE, "rb") as stream:
            page = stream.read()
        try:
            with open(target, "rb") as stream:
                if stream.read() == page:
                    return
        except OSError:
            pass
        write_atomic(target, page)

    # --- events -----------------------------------------------------------------------------------------------
    def _lab(self, host):
        return self._lab_of.get(host.get_name()) if self._state else None

    def v2_runner_on_start(self, host, task):
        lab = self._lab(host)
        if lab:
            with self._lock:
                self._state.task_started(lab, task.get_name())
            self._dirty.set()

    def _ran(self, result):
        lab = self._lab(result._host)
        if lab:
            with self._lock:
                self._state.task_ran(lab)
            self._dirty.set()

    def v2_runner_on_ok(self, result):
        self._ran(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            self._ran(result)
            return
        self._failed(result, failure_reason(result._result))

    def v2_runner_on_unreachable(self, result):
        self._failed(result, "unreachable: " + (failure_reason(result._result) or "no answer"))

    def _failed(self, result, reason):
        lab = self._lab(result._host)
        if lab:
            with self._lock:
                self._state.task_failed(lab, result._task.get_name(), reason)
            self._dirty.set()

    def v2_playbook_on_stats(self, stats):
        if self._state is None:
            return
        self._stop.set()
        if self._writer:
            self._writer.join(timeout=5)
        with self._lock:
            self._state.finish()
        self._write()

    # --- writing ----------------------------------------------------------------------------------------------
    def _write_loop(self):
        while not self._stop.is_set():
            if self._dirty.wait(timeout=WRITE_INTERVAL) and not self._stop.is_set():
                self._dirty.clear()
                self._write()
                self._stop.wait(WRITE_INTERVAL)

    def _exercises(self):
        """Each lab's exercise checks, read again only when one of its check files changed (a file added, removed,
        replaced or written in place): a listing of the lab's report folder per write, no file read."""
        for lab in self._state.labs:
            try:
                with os.scandir(os.path.join(self._reports, lab)) as entries:
                    stamp = tuple(sorted((entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                                         for entry in entries if entry.name.startswith("check-")))
            except OSError:
                stamp = None
            cached = self._checks.get(lab)
            if cached is None or cached[0] != stamp:
                self._checks[lab] = (stamp, read_checks(self._reports, lab) if stamp else [])
        return {lab: cells for lab, (_stamp, cells) in self._checks.items()}

    def _write(self):
        # Read outside the lock: the events need not wait for the files.
        exercises = self._exercises() if self._reports else {}
        with self._lock:
            data = json.dumps(self._state.as_dict(exercises), indent=1, sort_keys=False)
        try:
            write_atomic(os.path.join(self._folder, "live.json"), (data + "\n").encode())
            # For a page opened as a file (file://), which may read a script but not a JSON file.
            write_atomic(os.path.join(self._folder, "live.js"), f"window.istioLabLive = {data};\n".encode())
        except OSError as exc:
            self._display.warning(f"classroom live page: cannot write to {self._folder}: {exc}")
