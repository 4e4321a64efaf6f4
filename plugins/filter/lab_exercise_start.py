# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of playbooks/exercise.yml: the catalogue an exercise's start builds
and probes (module_utils istio_lab/exercise_start.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import exercise_start as _start


def lab_exercise_start_catalogue(catalogue, chapter):
    """lab_chapters with `chapter` as its exercise starts: without the students' objects, probes expecting 404."""
    try:
        return _start.lab_exercise_start_catalogue(catalogue, chapter)
    except _start.ExerciseError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"lab_exercise_start_catalogue": lab_exercise_start_catalogue}
