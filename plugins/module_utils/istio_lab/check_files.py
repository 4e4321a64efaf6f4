# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exercise checks' files, read for the classroom page: one reader for the status role (plugins/filter/
classroom.py) and the live page (plugins/callback/classroom_live.py).

``check.yml`` writes ``<report dir>/<lab>/check-<chapter>.json`` per lab and exercise (issue 28): ``{lab, chapter,
title, state: done|not_yet|unreachable, reason, explanation, hint, ingress_ip, probes, student_objects,
checked_at}``. The page shows one cell per file: the state, the one-line reason, when it was checked.
"""

from __future__ import annotations

import glob
import json
import os
import re

STATES = ("done", "not_yet", "unreachable")
PREFIX, SUFFIX = "check-", ".json"
REASON_LENGTH = 200


def chapter_key(chapter):
    """Chapters in the course's order: by number, then the rest ("2" < "5" < "10" < "10a")."""
    text = str(chapter)
    match = re.match(r"(\d+)(.*)", text)
    return (0, int(match.group(1)), match.group(2)) if match else (1, 0, text)


def _line(text):
    line = " ".join(str(text or "").split())
    return line if len(line) <= REASON_LENGTH else line[: REASON_LENGTH - 1] + "\u2026"


def read_checks(report_dir, lab):
    """The lab's exercise cells, by chapter: [{chapter, title, state, reason, checked_at}]; [] when no check ran.
    A file that cannot be read (being replaced, or not JSON) is a cell in state ``unknown`` saying so."""
    cells = []
    for path in glob.glob(os.path.join(glob.escape(os.path.join(str(report_dir), str(lab))), PREFIX + "*" + SUFFIX)):
        chapter = os.path.basename(path)[len(PREFIX):-len(SUFFIX)]
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            cells.append({"chapter": chapter, "title": "", "state": "unknown",
                          "reason": _line(f"cannot read {os.path.basename(path)}: {exc}"), "checked_at": ""})
            continue
        state = str(data.get("state") or "")
        cells.append({"chapter": str(data.get("chapter") or chapter), "title": str(data.get("title") or ""),
                      "state": state if state in STATES else "unknown", "reason": _line(data.get("reason")),
                      "checked_at": str(data.get("checked_at") or "")})
    return sorted(cells, key=lambda cell: chapter_key(cell["chapter"]))


def exercise_columns(rows):
    """The exercises any row has a cell for, in chapter order: [{chapter, title}] (the page's columns)."""
    titles = {}
    for row in rows or []:
        for cell in row.get("exercises") or []:
            if cell["chapter"] not in titles or not titles[cell["chapter"]]:
                titles[cell["chapter"]] = cell.get("title") or ""
    return [{"chapter": chapter, "title": titles[chapter]} for chapter in sorted(titles, key=chapter_key)]
