"""playbooks/classroom-inventory.yml end to end (no cluster involved): a
roster becomes an inventory Ansible reads, the plan survives regeneration,
check mode writes nothing, and classroom.yml refuses a bad address plan
before it touches any cluster."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible(tool, *args, env=None):
    environment = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}:{os.environ['PATH']}",
        **(env or {}),
    )
    proc = subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stdout + proc.stderr


def recap(output, host="localhost"):
    match = re.search(
        rf"^{re.escape(host)}\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M
    )
    assert match, output
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


def write_roster(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "name", "kubeconfig", "context", "machines"])
        writer.writeheader()
        writer.writerows(rows)


def generate(tmp_path, roster, *extra, check=False):
    args = [
        "playbooks/classroom-inventory.yml",
        "-e",
        f"classroom_inventory_roster={roster}",
        "-e",
        f"classroom_inventory_dir={tmp_path / 'inv'}",
        "-e",
        "classroom_inventory_address_ranges=127.20.0.0/24",
        *extra,
    ]
    return ansible("ansible-playbook", *args, *(["--check"] if check else []))


def rows(count, start=1):
    return [
        {
            "id": f"student{n:02d}",
            "name": f"Student {n}",
            "kubeconfig": f"/tmp/kc/student{n:02d}.yaml",
            "context": "",
            "machines": "",
        }
        for n in range(start, start + count)
    ]


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    write_roster(path, rows(12))
    return path


def inventory_list(tmp_path):
    rc, out = ansible("ansible-inventory", "-i", str(tmp_path / "inv"), "--list")
    assert rc == 0, out
    return json.loads(out[out.index("{") :])


def test_roster_becomes_an_inventory_ansible_reads(tmp_path, roster):
    rc, out = generate(tmp_path, roster)
    assert rc == 0, out
    inventory = inventory_list(tmp_path)
    labs = inventory["labs"]["hosts"]
    assert labs == [f"student{n:02d}" for n in range(1, 13)]
    student07 = inventory["_meta"]["hostvars"]["student07"]
    assert student07["lab_domain"] == "student07.kubernets.cn"
    assert student07["lab_kubeconfig"] == "/tmp/kc/student07.yaml"
    assert student07["metallb_address_range"] == "127.20.0.25-127.20.0.28"
    assert student07["lab_ingress_ip"] == "127.20.0.25"
    # The shared settings reach the classroom inventory through the linked group_vars.
    assert student07["lab_chapter_label"] == "istio-lab.io/chapter"
    assert inventory["class_student07"]["hosts"] == ["student07"]
    recorded = yaml.safe_load((tmp_path / "inv/group_vars/labs.yml").read_text())
    assert recorded["classroom_inventory_plan_record"]["student07"]["slot"] == 6


def test_regeneration_is_idempotent_and_keeps_everyones_addresses(tmp_path, roster):
    assert generate(tmp_path, roster)[0] == 0
    before = inventory_list(tmp_path)["_meta"]["hostvars"]
    rc, out = generate(tmp_path, roster)
    assert rc == 0 and recap(out)["changed"] == 0, out
    # A new student whose id sorts first, and one leaving: nobody else moves.
    write_roster(
        roster,
        [{"id": "aaron", "name": "Aaron", "kubeconfig": "/tmp/kc/aaron.yaml", "context": "", "machines": ""}]
        + [r for r in rows(12) if r["id"] != "student03"],
    )
    rc, out = generate(tmp_path, roster)
    assert rc == 0, out
    after = inventory_list(tmp_path)["_meta"]["hostvars"]
    for student, hostvars in after.items():
        if student not in ("aaron",):
            assert hostvars["metallb_address_range"] == before[student]["metallb_address_range"], student
    assert "student03" not in after
    assert after["aaron"]["metallb_address_range"] == before["student03"]["metallb_address_range"]


def test_check_mode_writes_nothing(tmp_path, roster):
    rc, out = generate(tmp_path, roster, check=True)
    assert rc == 0, out
    assert not (tmp_path / "inv").exists()


def test_a_range_too_small_is_refused_before_anything_is_written(tmp_path, roster):
    rc, out = generate(tmp_path, roster, "-e", "classroom_inventory_address_ranges=127.20.0.1-127.20.0.40")
    assert rc != 0
    assert "address range too small" in out and "holds 10 usable pools of 4 addresses, 12 students" in out
    assert not (tmp_path / "inv").exists()


def test_reset_chapter_limit_picks_exactly_one_students_lab(tmp_path, roster):
    assert generate(tmp_path, roster)[0] == 0
    rc, out = ansible(
        "ansible-playbook",
        "playbooks/reset-chapter.yml",
        "-i",
        str(tmp_path / "inv"),
        "--limit",
        "student07",
        "-e",
        "chapter=1",
        "--list-hosts",
    )
    assert rc == 0, out
    listed = re.findall(r"^\s+(student\d+)\s*$", out, re.M)
    assert listed == ["student07"], out


def test_classroom_refuses_overlapping_pools_before_touching_any_cluster(tmp_path, roster):
    assert generate(tmp_path, roster)[0] == 0
    hosts_file = tmp_path / "inv/hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    labs = hosts["all"]["children"]["labs"]["hosts"]
    labs["student02"]["metallb_address_range"] = "127.20.0.3-127.20.0.4"  # hand edit: overlaps student01
    hosts["all"]["children"]["kube_workers"] = {"hosts": {"node-x": {"ansible_host": "127.20.0.10"}}}
    hosts_file.write_text(yaml.safe_dump(hosts))
    rc, out = ansible("ansible-playbook", "playbooks/classroom.yml", "-i", str(tmp_path / "inv"))
    assert rc != 0
    assert "student02: pool 127.20.0.3-127.20.0.4 overlaps student01's pool 127.20.0.1-127.20.0.4" in out
    assert "student03: pool 127.20.0.9-127.20.0.12 contains node/reserved address 127.20.0.10" in out
    assert "student02: lab_ingress_ip 127.20.0.5 is outside its pool" in out
    # Nothing ran after the check.
    assert "PLAY [Record which labs this run builds]" not in out, out
