"""A student's handout kubeconfig holds that student's credentials and nothing else (issue 12).

The instructor's kubeconfig has a context per student (tokens, client
certificates as files and as data, CAs as a relative file, an absolute file
and data), a context whose user logs in through an exec plugin, a context two
students share, and the instructor's own production context as
current-context. Each student's cluster is an API double of their own (TLS,
its own CA and token), so a handout that works there holds the right
credentials. `playbooks/classroom.yml` (stages handouts, status) must write
each handout with exactly that student's context, working with kubectl and
the Python client, refuse the exec plugin, the missing context and the shared
credentials naming the students, and print no secret.

The class needs one API per student, each with its own token: API doubles
only. The shared-cluster check at the end runs against any API.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import shared_path
from tests.handout_kubeconfigs import b64, client_certificate, secrets_of, write_kubeconfig, write_private
from tests.helpers import run_playbook
from tests.kube_double import KubeDouble

pytestmark = [pytest.mark.api, pytest.mark.slow]

GOOD = ["alice", "bob", "carol"]
# student -> context in the instructor's file (frank's does not exist; gina and hank share one).
ROSTER = {"alice": "alice", "bob": "bob", "carol": "carol", "eve": "eve", "frank": "frank", "gina": "pair",
          "hank": "pair"}
USER_OF = {"alice": "alice", "bob": "bob", "carol": "carol", "gina": "pair", "hank": "pair"}
HOSTS = {"alice": "127.31.0.1", "bob": "127.31.0.2", "carol": "127.31.0.3"}


def ca_of(double: KubeDouble, folder: Path) -> bytes:
    """The double's CA (PEM), read back from the kubeconfig it writes."""
    path = double.write_kubeconfig(folder / f"{double.host}.kubeconfig")
    import base64

    return base64.b64decode(yaml.safe_load(Path(path).read_text())["clusters"][0]["cluster"]
                            ["certificate-authority-data"])


class Class:
    def __init__(self, root: Path):
        self.root = root
        self.doubles: dict[str, KubeDouble] = {}
        self.instructor = root / "instructor"
        self.inventory = root / "inventory"
        self.handouts = root / "handouts"
        self.status = root / "status"
        self.env = {"TMPDIR": str(root / "tmp")}
        (root / "tmp").mkdir()

    def start(self):
        for student, host in HOSTS.items():
            self.doubles[student] = KubeDouble(tls=True, host=host, token=f"{student}-{secrets.token_hex(16)}").start()
        d = self.doubles
        cas = {s: ca_of(d[s], self.root / "tmp") for s in GOOD}
        bob_cert, bob_key = client_certificate("bob")
        carol_cert, carol_key = client_certificate("carol")
        write_private(self.instructor / "certs" / "a-ca.crt", cas["alice"])  # relative to the kubeconfig
        b_ca = write_private(self.root / "elsewhere" / "b-ca.crt", cas["bob"])  # absolute
        write_private(self.instructor / "certs" / "bob.crt", bob_cert)
        write_private(self.instructor / "certs" / "bob.key", bob_key)
        self.config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "prod",
            "clusters": [
                {"name": "class-a", "cluster": {"server": d["alice"].url, "certificate-authority": "certs/a-ca.crt"}},
                {"name": "class-b", "cluster": {"server": d["bob"].url, "certificate-authority": str(b_ca)}},
                {"name": "class-c", "cluster": {"server": d["carol"].url,
                                                "certificate-authority-data": b64(cas["carol"])}},
                {"name": "prod", "cluster": {"server": "https://127.31.0.9:6443", "insecure-skip-tls-verify": True}},
            ],
            "users": [
                {"name": "alice", "user": {"token": d["alice"].token}},
                # Client certificates (files, data) with the token the double checks (client-go sends both).
                {"name": "bob", "user": {"client-certificate": "certs/bob.crt", "client-key": "./certs/bob.key",
                                         "token": d["bob"].token}},
                {"name": "carol", "user": {"client-certificate-data": b64(carol_cert),
                                           "client-key-data": b64(carol_key), "token": d["carol"].token}},
                {"name": "admin", "user": {"token": f"prod-admin-{secrets.token_hex(16)}"}},
                {"name": "sso", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                  "command": "kubelogin", "args": ["get-token"],
                                                  "interactiveMode": "Never"}}},
                {"name": "pair", "user": {"token": f"pair-{secrets.token_hex(16)}"}},
            ],
            "contexts": [
                {"name": "alice", "context": {"cluster": "class-a", "user": "alice"}},
                {"name": "bob", "context": {"cluster": "class-b", "user": "bob"}},
                {"name": "carol", "context": {"cluster": "class-c", "user": "carol", "namespace": "lab-carol"}},
                {"name": "prod", "context": {"cluster": "prod", "user": "admin"}},
                {"name": "eve", "context": {"cluster": "class-a", "user": "sso"}},
                {"name": "pair", "context": {"cluster": "class-c", "user": "pair"}},
            ],
        }
        self.kubeconfig = write_kubeconfig(self.instructor / "class.yaml", self.config)
        self.users = {u["name"]: u["user"] for u in self.config["users"]}
        return self

    def secrets(self, user: str) -> list[str]:
        return secrets_of(self.users[user], self.instructor)

    def generate_inventory(self):
        roster = self.root / "roster.csv"
        with roster.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "kubeconfig", "context", "machines"])
            writer.writerows([student, student.title(), str(self.kubeconfig), context, ""]
                             for student, context in ROSTER.items())
        result = run_playbook("playbooks/classroom-inventory.yml", env=self.env, extra_vars={
            "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(self.inventory),
            "classroom_inventory_address_ranges": "127.21.0.0/24", "classroom_inventory_domain": "lab.test"})
        assert result.rc == 0, result

    def build(self, **extra):
        return run_playbook("playbooks/classroom.yml", inventory=self.inventory, env=self.env, timeout=1200,
                            extra_vars={"classroom_stages": ["handouts", "status"], "lab_enabled_chapters": ["1"],
                                        "classroom_handout_dir": str(self.handouts),
                                        "classroom_status_dir": str(self.status), **extra})

    def stop(self):
        for double in self.doubles.values():
            double.stop()


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("needs one API per student, each with its own token: API doubles only")
    if not (shared_path() / "crds").is_dir():
        pytest.skip(f"shared reference folder not found at {shared_path()}")
    room = Class(tmp_path_factory.mktemp("handouts")).start()
    try:
        room.generate_inventory()
        room.first = room.build()
        yield room
    finally:
        room.stop()


def handout(room, student) -> dict:
    return yaml.safe_load((room.handouts / student / "kubeconfig").read_text())


def test_good_students_get_handouts_and_the_others_are_refused_by_name(room):
    result = room.first
    assert result.rc != 0, result
    for student in GOOD:
        assert result.recap[student]["failed"] == 0, (student, result)
    for student in ("eve", "frank", "gina", "hank"):
        assert result.recap[student]["failed"] == 1, (student, result)
        assert not (room.handouts / student / "kubeconfig").exists(), student
    output = " ".join(result.stdout.split())
    assert "student eve: user 'sso' (context 'eve') in kubeconfig" in output
    assert "exec plugin (kubelogin)" in output and "ServiceAccount token" in output
    assert f"student frank: kubeconfig {room.kubeconfig} has no context named 'frank'" in output
    assert "student gina would get the same credentials (user 'pair' of " in output
    assert "as hank: give each their own context and user, or set classroom_handout_allow_shared_credentials" \
        in output
    assert "student hank would get the same credentials" in output


def test_each_handout_holds_exactly_its_students_context_embedded(room):
    for student in GOOD:
        path = room.handouts / student / "kubeconfig"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        config = handout(room, student)
        assert set(config) == {"apiVersion", "kind", "clusters", "contexts", "users", "current-context"}
        assert config["current-context"] == student
        assert [c["name"] for c in config["contexts"]] == [student]
        assert [u["name"] for u in config["users"]] == [student]
        assert [c["name"] for c in config["clusters"]] == [config["contexts"][0]["context"]["cluster"]]
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == room.doubles[student].url
        assert set(cluster) == {"server", "certificate-authority-data"}
        user = config["users"][0]["user"]
        assert user["token"] == room.doubles[student].token
    assert set(handout(room, "bob")["users"][0]["user"]) == {"client-certificate-data", "client-key-data", "token"}
    assert handout(room, "carol")["contexts"][0]["context"]["namespace"] == "lab-carol"


def test_no_other_secret_in_any_handout_log_or_status_file(room):
    files = {p: p.read_text() for folder in (room.handouts, room.status) for p in folder.rglob("*") if p.is_file()}
    assert any(p.parent == room.status for p in files)
    output = room.first.stdout + room.first.stderr
    for user in room.users:
        for secret in room.secrets(user):
            assert secret not in output, user
            for path, text in files.items():
                student = path.relative_to(room.handouts).parts[0] if room.handouts in path.parents else None
                if USER_OF.get(student) != user:
                    assert secret not in text, (user, path)


def test_handouts_work_with_the_python_client_against_their_own_api(room):
    from kubernetes import config
    from kubernetes.client import CoreV1Api, VersionApi

    for student in GOOD:
        client = config.new_client_from_config(config_file=str(room.handouts / student / "kubeconfig"))
        assert client.configuration.host == room.doubles[student].url
        assert VersionApi(client).get_code().git_version
        names = [n.metadata.name for n in CoreV1Api(client).list_namespace().items]
        assert "kube-system" in names, student


def test_handouts_work_with_kubectl(room, tmp_path):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (scripts/setup does not provide it; the bench host has one)")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for student in GOOD:
        path = str(room.handouts / student / "kubeconfig")
        view = subprocess.run([kubectl, "--kubeconfig", path, "config", "view", "-o", "json"], env=env,
                              capture_output=True, text=True, check=True, timeout=60)
        config = json.loads(view.stdout)
        assert config["current-context"] == student
        assert [c["name"] for c in config["contexts"]] == [student]
        assert len(config["users"]) == 1 and len(config["clusters"]) == 1
        names = subprocess.run([kubectl, "--kubeconfig", path, "get", "namespaces", "-o", "name"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert names.returncode == 0 and "namespace/kube-system" in names.stdout, (student, names.stderr)


def test_shared_credentials_on_purpose_and_reruns_change_nothing(room):
    before = {s: (room.handouts / s / "kubeconfig").stat().st_mtime_ns for s in GOOD}
    result = room.build(classroom_handout_allow_shared_credentials=True)
    assert all(result.recap[s]["failed"] == 0 for s in ("gina", "hank", *GOOD)), result
    assert handout(room, "gina") == handout(room, "hank")
    assert handout(room, "gina")["current-context"] == "pair"
    assert {s: (room.handouts / s / "kubeconfig").stat().st_mtime_ns for s in GOOD} == before
    output = result.stdout + result.stderr
    for user in room.users:
        for secret in room.secrets(user):
            assert secret not in output, user


def test_shared_mode_never_hands_out_the_admin_kubeconfig(kube, tmp_path):
    """Shared-cluster mode without the tenants stage: no tenant kubeconfig, so no handout (not the admin's)."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\nada,Ada\n")
    inventory = tmp_path / "inventory"
    env = {"TMPDIR": str(tmp_path)}
    result = run_playbook("playbooks/classroom-inventory.yml", env=env, extra_vars={
        "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(inventory),
        "classroom_inventory_mode": "shared", "classroom_inventory_shared_kubeconfig": kube.kubeconfig,
        "classroom_inventory_shared_context": kube.context, "classroom_inventory_domain": "lab.test",
        "classroom_inventory_shared_address_range": "127.21.1.1-127.21.1.4",
        "classroom_inventory_shared_ingress_ip": "127.21.1.1"})
    assert result.rc == 0, result
    result = run_playbook("playbooks/classroom.yml", inventory=inventory, env=env, extra_vars={
        "classroom_stages": ["handouts"], "classroom_handout_dir": str(tmp_path / "handouts")})
    assert result.recap["ada"]["failed"] == 1, result
    assert "student ada: no tenant kubeconfig in shared-cluster mode" in " ".join(result.stdout.split())
    assert not (tmp_path / "handouts" / "ada" / "kubeconfig").exists()
