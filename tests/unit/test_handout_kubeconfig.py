"""plugins/filter/kubeconfig.py: the kubeconfig istio-lab writes for someone else
holds one context, its cluster and user, credentials embedded, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from tests.handout_kubeconfigs import b64, client_certificate, secrets_of, write_kubeconfig, write_private

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))
import kubeconfig as kc  # noqa: E402

STUDENTS = ("alice", "bob", "carol")


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.fixture
def source(tmp_path, home):
    """An instructor's kubeconfig: a context per student plus their own production one as current-context."""
    folder = tmp_path / "instructor"
    ca_pem, _ = client_certificate("class-ca")
    bob_cert, bob_key = client_certificate("bob")
    carol_cert, carol_key = client_certificate("carol")
    write_private(folder / "certs" / "ca.crt", ca_pem)  # relative to the kubeconfig's folder
    write_private(folder / "certs" / "bob.crt", bob_cert)
    write_private(home / ".class" / "bob.key", bob_key)  # under ~
    prod_ca = write_private(tmp_path / "prod" / "ca.crt", b"prod-ca")  # absolute
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {"colors": True},
        "current-context": "prod",
        "clusters": [
            {"name": "class-a", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "certs/ca.crt",
                                            "extensions": [{"name": "x", "extension": {"note": "instructor"}}]}},
            {"name": "class-b", "cluster": {"server": "https://127.0.0.2:6443",
                                            "certificate-authority-data": b64(ca_pem),
                                            "tls-server-name": "class-b.test"}},
            {"name": "prod", "cluster": {"server": "https://127.0.0.9:6443", "certificate-authority": str(prod_ca)}},
        ],
        "users": [
            {"name": "alice", "user": {"token": "alice-secret-token"}},
            {"name": "bob", "user": {"client-certificate": "certs/bob.crt", "client-key": "~/.class/bob.key"}},
            {"name": "carol", "user": {"client-certificate-data": b64(carol_cert), "client-key-data": b64(carol_key)}},
            {"name": "admin", "user": {"token": "prod-admin-secret-token"}},
        ],
        "contexts": [
            {"name": "alice", "context": {"cluster": "class-a", "user": "alice", "namespace": "lab-alice"}},
            {"name": "bob", "context": {"cluster": "class-a", "user": "bob"}},
            {"name": "carol", "context": {"cluster": "class-b", "user": "carol"}},
            {"name": "prod", "context": {"cluster": "prod", "user": "admin"}},
        ],
    }
    path = write_kubeconfig(folder / "class.yaml", config)
    return {"path": path, "config": config, "folder": folder, "ca": ca_pem, "bob": (bob_cert, bob_key),
            "carol": (carol_cert, carol_key)}


def users_of(source):
    return {u["name"]: u["user"] for u in source["config"]["users"]}


def test_each_student_gets_exactly_their_context_with_everything_embedded(source):
    for student in STUDENTS:
        built = kc.kubeconfig_minimal(str(source["path"]), student, f"student {student}")
        assert built["current-context"] == student
        assert set(built) == {"apiVersion", "kind", "clusters", "contexts", "users", "current-context"}
        assert [c["name"] for c in built["contexts"]] == [student]
        assert [u["name"] for u in built["users"]] == [student]
        cluster_name = built["contexts"][0]["context"]["cluster"]
        assert [c["name"] for c in built["clusters"]] == [cluster_name]
        cluster = built["clusters"][0]["cluster"]
        assert cluster["certificate-authority-data"] == b64(source["ca"])
        assert "certificate-authority" not in cluster and "extensions" not in cluster
        text = kc.kubeconfig_yaml(built)
        for other, user in users_of(source).items():
            if other != student:
                for secret in secrets_of(user, source["folder"]):
                    assert secret not in text, (student, other)
        assert "prod" not in text and "127.0.0.9" not in text and "colors" not in text
    alice = kc.kubeconfig_minimal(str(source["path"]), "alice", "student alice")
    assert alice["users"][0]["user"] == {"token": "alice-secret-token"}
    assert alice["contexts"][0]["context"] == {"cluster": "class-a", "user": "alice", "namespace": "lab-alice"}
    bob = kc.kubeconfig_minimal(str(source["path"]), "bob", "student bob")["users"][0]["user"]
    assert bob == {"client-certificate-data": b64(source["bob"][0]), "client-key-data": b64(source["bob"][1])}
    carol = kc.kubeconfig_minimal(str(source["path"]), "carol", "student carol")
    assert carol["users"][0]["user"] == {"client-certificate-data": b64(source["carol"][0]),
                                         "client-key-data": b64(source["carol"][1])}
    assert carol["clusters"][0]["cluster"]["tls-server-name"] == "class-b.test"


def test_without_a_context_the_files_current_one_is_used(source):
    built = kc.kubeconfig_minimal(str(source["path"]), "", "student zoe")
    assert built["current-context"] == "prod"
    assert built["clusters"][0]["cluster"]["certificate-authority-data"] == b64(b"prod-ca")


def test_the_output_is_stable_and_building_it_again_changes_nothing(source, tmp_path):
    built = kc.kubeconfig_minimal(str(source["path"]), "bob", "student bob")
    text = kc.kubeconfig_yaml(built)
    again = write_kubeconfig(tmp_path / "again.yaml", yaml.safe_load(text))
    assert kc.kubeconfig_yaml(kc.kubeconfig_minimal(str(again), "", "student bob")) == text
    assert kc.kubeconfig_minimal(yaml.safe_load(text), owner="student bob") == built
    assert text.startswith("apiVersion: v1\nkind: Config\nclusters:\n")


def test_a_missing_context_is_refused_naming_the_student(source):
    with pytest.raises(AnsibleFilterError, match=r"student dave: kubeconfig .*class.yaml has no context named 'dave'"):
        kc.kubeconfig_minimal(str(source["path"]), "dave", "student dave")
    assert kc.kubeconfig_problems(str(source["path"]), "dave", "student dave") == [
        f"student dave: kubeconfig {source['path']} has no context named 'dave'"]


def test_a_missing_kubeconfig_or_no_current_context_is_refused(tmp_path):
    with pytest.raises(AnsibleFilterError, match="student dave: cannot read kubeconfig .*nowhere.yaml"):
        kc.kubeconfig_minimal(str(tmp_path / "nowhere.yaml"), "", "student dave")
    path = write_kubeconfig(tmp_path / "k.yaml", {"contexts": [], "clusters": [], "users": []})
    with pytest.raises(AnsibleFilterError, match="student dave: no context given and .* has no current-context"):
        kc.kubeconfig_minimal(str(path), "", "student dave")


@pytest.mark.parametrize("user, what", [
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws", "args": ["eks", "get-token"]}},
     r"an exec plugin \(aws\)"),
    ({"auth-provider": {"name": "oidc", "config": {"id-token": "secret-id-token", "refresh-token": "r"}}},
     r"an auth-provider plugin \(oidc\)"),
])
def test_plugin_credentials_are_refused_saying_what_to_do_instead(tmp_path, user, what):
    path = write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "sso", "user": user}],
        "contexts": [{"name": "eve", "context": {"cluster": "c", "user": "sso"}}]})
    problems = kc.kubeconfig_problems(str(path), "eve", "student eve")
    assert len(problems) == 1
    assert problems[0].startswith("student eve: user 'sso' (context 'eve')")
    assert "ServiceAccount token" in problems[0] and "client certificate" in problems[0]
    assert "secret-id-token" not in problems[0] and "get-token" not in problems[0]
    with pytest.raises(AnsibleFilterError, match=what):
        kc.kubeconfig_minimal(str(path), "eve", "student eve")


def test_impersonation_is_refused(tmp_path):
    path = write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "eve", "user": {"token": "admin-token", "as": "eve"}}],
        "contexts": [{"name": "eve", "context": {"cluster": "c", "user": "eve"}}]})
    (problem,) = kc.kubeconfig_problems(str(path), "eve", "student eve")
    assert "student eve" in problem and "impersonates (as)" in problem and "admin-token" not in problem


def test_an_unreadable_certificate_file_is_refused_without_its_content(source, tmp_path):
    (source["folder"] / "certs" / "bob.crt").unlink()
    (problem,) = kc.kubeconfig_problems(str(source["path"]), "bob", "student bob")
    assert problem.startswith("student bob: user 'bob' (context 'bob')")
    assert f"cannot read client-certificate {source['folder'] / 'certs' / 'bob.crt'}" in problem


def test_embedded_data_wins_over_a_file_that_is_not_there(tmp_path):
    path = write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "/no/ca",
                                               "certificate-authority-data": b64(b"ca")}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"})
    assert kc.kubeconfig_minimal(str(path))["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:6443", "certificate-authority-data": b64(b"ca")}


def test_a_token_file_is_inlined(tmp_path):
    write_private(tmp_path / "token", b"file-token\n")
    path = write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"})
    assert kc.kubeconfig_minimal(str(path))["users"][0]["user"] == {"token": "file-token"}


def test_a_certificate_without_its_key_is_refused(tmp_path):
    path = write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(b"cert")}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"})
    with pytest.raises(AnsibleFilterError, match="client certificate without its key"):
        kc.kubeconfig_minimal(str(path), owner="student x")


def test_a_kubeconfig_from_another_machine_must_embed_its_files_and_can_get_another_server():
    fetched = {"apiVersion": "v1", "kind": "Config", "current-context": "default", "preferences": {},
               "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443",
                                                            "certificate-authority-data": b64(b"k3s-ca")}}],
               "users": [{"name": "default", "user": {"client-certificate-data": b64(b"c"),
                                                      "client-key-data": b64(b"k")}}],
               "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}]}
    built = kc.kubeconfig_minimal(fetched, owner="lab s1", server="https://127.0.0.5:6443", files=False)
    assert built["clusters"][0]["cluster"] == {"server": "https://127.0.0.5:6443",
                                               "certificate-authority-data": b64(b"k3s-ca")}
    assert "preferences" not in built
    fetched["users"][0]["user"] = {"client-certificate": "/var/lib/rancher/k3s/client.crt",
                                   "client-key": "/var/lib/rancher/k3s/client.key"}
    with pytest.raises(AnsibleFilterError, match=r"lab s1: .*names a file \(client-certificate: .*\) of the machine"):
        kc.kubeconfig_minimal(fetched, owner="lab s1", files=False)


def test_two_students_with_the_same_credentials_are_refused_unless_allowed(source):
    path = str(source["path"])
    peers = [{"name": "bob", "kubeconfig": path, "context": "bob"},
             {"name": "carol", "kubeconfig": path, "context": "carol"},
             {"name": "zoe", "kubeconfig": path, "context": "alice"},  # alice's user again
             {"name": "broken", "kubeconfig": path, "context": "nobody"}]  # reported by its own check
    (problem,) = kc.kubeconfig_problems(path, "alice", "student alice", peers=peers)
    assert problem.startswith("student alice would get the same credentials (user 'alice' of "
                              "https://127.0.0.1:6443) as zoe:")
    assert "classroom_handout_allow_shared_credentials: true" in problem and "alice-secret-token" not in problem
    assert kc.kubeconfig_problems(path, "alice", "student alice", peers=peers, allow_shared=True) == []
    assert kc.kubeconfig_problems(path, "bob", "student bob", peers=peers[1:]) == []


def test_the_same_token_for_another_api_server_is_not_shared(tmp_path):
    """Per-student clusters built alike may accept the same token: each only their own server."""
    paths = []
    for n in (1, 2):
        paths.append(str(write_kubeconfig(tmp_path / f"{n}.yaml", {
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.{n}:6443"}}],
            "users": [{"name": "u", "user": {"token": "same"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"})))
    assert kc.kubeconfig_problems(paths[0], "", "student one", peers=[{"name": "two", "kubeconfig": paths[1]}]) == []


def test_invalid_yaml_is_reported_without_quoting_it(tmp_path):
    path = write_private(tmp_path / "k.yaml", b"users:\n- name: u\n  user: {token: 'leaked-secret\n")
    (problem,) = kc.kubeconfig_problems(str(path), "", "student x")
    assert problem.startswith("student x: kubeconfig ") and "is not valid YAML" in problem
    assert "leaked-secret" not in problem


def test_peers_from_zip_lists_and_kubeconfig_text(source):
    path = str(source["path"])
    peers = [["zoe", path, "alice"], ["yan", path]]  # what `names | zip(kubeconfigs, contexts)` gives
    (problem,) = kc.kubeconfig_problems(path, "alice", "student alice", peers=peers)
    assert "as zoe:" in problem
    # yan has no context: the file's current one (prod), the same as an empty-context student's.
    (problem,) = kc.kubeconfig_problems(path, "", "student xi", peers=peers)
    assert "(user 'admin' of https://127.0.0.9:6443) as yan:" in problem
    text = kc.kubeconfig_yaml(kc.kubeconfig_minimal(path, "carol"))
    assert kc.kubeconfig_minimal(text, content=True, files=False) == kc.kubeconfig_minimal(path, "carol")
    assert kc.kubeconfig_problems("users: [", owner="node cp1", content=True) == [
        "node cp1: the kubeconfig is not valid YAML (line 1)"]


def test_the_cluster_alone_never_reads_the_user(tmp_path):
    """shared_cluster_tenant takes only the admin context's cluster: an exec-plugin admin is fine there."""
    write_private(tmp_path / "ca.crt", b"admin-ca")
    path = write_kubeconfig(tmp_path / "admin.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt",
                                               "tls-server-name": "api.test"}}],
        "users": [{"name": "sso", "user": {"exec": {"command": "kubelogin"}}}],
        "contexts": [{"name": "admin", "context": {"cluster": "c", "user": "sso"}}], "current-context": "admin"})
    assert kc.kubeconfig_cluster(str(path), owner="student ada's tenant") == {
        "name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(b"admin-ca"),
                                 "tls-server-name": "api.test"}}
    with pytest.raises(AnsibleFilterError, match="student ada's tenant: .* has no context named 'x'"):
        kc.kubeconfig_cluster(str(path), "x", owner="student ada's tenant")


def test_users_without_credentials_share_nothing(tmp_path):
    path = str(write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:8080"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}},
                     {"name": "y", "context": {"cluster": "c"}}], "current-context": "x"}))
    assert kc.kubeconfig_problems(path, "x", "student x", peers=[["w", path, "x"]]) == []
    assert kc.kubeconfig_problems(path, "y", "student y", peers=[["v", path, "y"]]) == []
    assert "users" not in kc.kubeconfig_minimal(path, "y")


def test_the_same_user_entry_for_two_clusters_is_shared(tmp_path):
    """One user of the instructor's file in two students' contexts: the same identity, whatever the cluster."""
    path = str(write_kubeconfig(tmp_path / "k.yaml", {
        "clusters": [{"name": "a", "cluster": {"server": "https://127.0.0.1:6443"}},
                     {"name": "b", "cluster": {"server": "https://127.0.0.2:6443"}}],
        "users": [{"name": "teacher", "user": {"token": "teacher-token"}}],
        "contexts": [{"name": "ann", "context": {"cluster": "a", "user": "teacher"}},
                     {"name": "ben", "context": {"cluster": "b", "user": "teacher"}}]}))
    (problem,) = kc.kubeconfig_problems(path, "ann", "student ann", peers=[["ben", path, "ben"]])
    assert problem.startswith("student ann would get the same credentials (user 'teacher' of "
                              "https://127.0.0.1:6443) as ben:")
