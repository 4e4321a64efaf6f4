"""Which of the files a role is about to write differ from what the folder holds.

One filter for every "write only the files whose content differs" (the
verification's reports, the classroom handouts): the comparison runs on the
control machine, inside the template engine, so a re-run that finds the same
content starts no module process and reports no change.
"""

from __future__ import annotations

import os


def lab_changed_files(files, directory):
    """The names of `files` ({name: content}) whose file in `directory` is missing or holds other content."""
    changed = []
    for name, content in (files or {}).items():
        wanted = content if isinstance(content, bytes) else str(content).encode("utf-8")
        try:
            with open(os.path.join(os.path.expanduser(str(directory)), name), "rb") as handle:
                if handle.read() == wanted:
                    continue
        except OSError:
            pass  # missing or unreadable: written
        changed.append(name)
    return changed


class FilterModule:
    """lab_changed_files."""

    def filters(self):
        return {"lab_changed_files": lab_changed_files}
