"""Boolean and integer options typed on the command line (issue 21), through
ansible-playbook against a Kubernetes API (the double, or a real cluster with
ISTIO_LAB_TEST_KUBECONFIG).

`-e name=false` reaches Ansible as the string "false"; each option must then
behave as the YAML boolean would. The runs are grouped (several options per
ansible-playbook run) and each option is given as false and no, and as true
and yes (other cases and 0/1 mixed in), and the test checks what the option
does, not the variable:

- lab_routes_check_services: routes to Services that do not exist are applied
  (false) or refused before any write (true);
- lab_verify_fail / lab_verify_accept_redirects / lab_verify_mesh_probes: the
  play passes or fails on a failed probe, Kiali's 302 counts or not, chapter 6's
  in-mesh request is only listed (SKIP) or attempted;
- lab_preflight_force / lab_preflight_check_kube_proxy / chapter_restore_force:
  the preflight is skipped or rerun, an IPVS kube-proxy without strictARP stops
  it or not, a save from another cluster is refused or restored;
- integers as strings (lab_verify_http_port, lab_verify_timeout, ...) work;
- an invalid value (`maybe`, `5m`) stops the run before its first task, naming
  the option, with nothing written.

The node roles' booleans (node_prep_*, kubeadm_untaint_control_plane) run on
machines, not on this API: their template side is rendered through
ansible-playbook here, their task side is covered by tests/unit/test_options.py
(every use converts) and the molecule scenarios.
"""

import json
import textwrap

import pytest
import yaml

from tests.api.test_chapters import saved_chapter_one
from tests.api.test_routes_verify import DOMAIN, by_host, flat
from tests.helpers import REPO, run_playbook
from tests.verify_envoy import Answer, EnvoyLikeServer

pytestmark = pytest.mark.api

EXTERNAL = "external.example"
ROUTES = {"lab_enabled_chapters": ["3", "6"], "lab_egress_host": EXTERNAL}


def routes(kube, check_services):
    return run_playbook("playbooks/routes.yml", kube, extra_vars=ROUTES,
                        cli_vars={"lab_routes_check_services": check_services})


def verify(kube, envoy, tmp_path, forms):
    """verify.yml with the three booleans typed as `forms` and the integers as strings."""
    cli_vars = {"lab_verify_fail": forms[0], "lab_verify_accept_redirects": forms[1],
                "lab_verify_mesh_probes": forms[2], "lab_verify_http_port": str(envoy.port),
                "lab_verify_gateway_port": "80", "lab_verify_timeout": "5", "lab_verify_retries": "0",
                "lab_verify_delay": "0"}
    result = run_playbook("playbooks/verify.yml", kube, cli_vars=cli_vars,
                          extra_vars={**ROUTES, "lab_verify_ingress_ip": envoy.address,
                                      "lab_verify_report_dir": str(tmp_path / "artifacts")})
    report_file = tmp_path / "artifacts" / "lab" / "verify.json"
    return result, json.loads(report_file.read_text()) if report_file.exists() else None


def test_routes_and_verify_booleans_typed_as_text(kube, tmp_path):
    for namespace in ("istio-system", "egress"):  # made by the platform and apps stages
        kube.ensure_namespace(namespace)
    # No Service exists: checking them refuses the routes, not checking applies them.
    for text in ("true", "YES"):
        mark = kube.mark()
        refused = routes(kube, text)
        assert refused.rc != 0 and "does not exist" in flat(refused.stdout), refused
        assert kube.writes(mark) == [], text
    for text, changed in (("false", True), ("No", False)):
        applied = routes(kube, text)
        assert applied.rc == 0, str(applied)
        assert (applied.changed > 0) is changed, str(applied)
    assert kube.get("networking.istio.io/v1", "VirtualService", "kiali-istio", "istio-system") is not None

    answers = {f"grafana-istio.{DOMAIN}": 503, f"kiali-istio.{DOMAIN}": Answer(302, location="/kiali/"),
               f"zipkin-istio.{DOMAIN}": 200}
    with EnvoyLikeServer("127.0.0.1", 0, answers) as envoy:
        for forms in (("false", "no", "FALSE"), ("No", "False", "0")):
            result, report = verify(kube, envoy, tmp_path, forms)
            assert result.rc == 0, (forms, result)  # lab_verify_fail false: reports, does not fail
            probes = by_host(report)
            assert report["http_port"] == envoy.port  # an integer, although typed as text
            assert not probes[f"kiali-istio.{DOMAIN}"]["ok"], forms  # a redirect is not accepted
            assert probes[EXTERNAL]["skipped"], probes[EXTERNAL]  # the in-mesh request is only listed
        for forms in (("true", "yes", "True"), ("YES", "TRUE", "1")):
            result, report = verify(kube, envoy, tmp_path, forms)
            assert result.rc != 0 and result.failed == 1, (forms, result)  # grafana's 503 fails the play
            assert "probe(s) failed" in flat(result.stdout)
            probes = by_host(report)
            assert probes[f"kiali-istio.{DOMAIN}"]["ok"], forms  # Kiali's redirect counts as working
            assert not probes[f"grafana-istio.{DOMAIN}"]["ok"]
            # the in-mesh request is attempted (the double runs no pod, so it fails, and is not SKIPped)
            assert not probes[EXTERNAL].get("skipped") and not probes[EXTERNAL]["ok"], probes[EXTERNAL]
            assert ("TASK [istio_lab.lab.lab_verify : Send each request from its client pod and read the egress "
                    "gateway's log]") in result.stdout


def kube_proxy_without_strict_arp(kube):
    kube.ensure_namespace("kube-system")
    config = {"mode": "ipvs", "ipvs": {"strictARP": False}}
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                "data": {"config.conf": yaml.safe_dump(config)}})


def test_preflight_and_restore_booleans_typed_as_text(kube, tmp_path):
    kube.require_double("writes a kube-proxy ConfigMap in kube-system")
    folder = saved_chapter_one(kube, tmp_path)
    manifest = yaml.safe_load((folder / "manifest.yml").read_text())
    manifest["cluster"]["uid"] = "00000000-0000-0000-0000-000000000000"  # a save from another cluster
    (folder / "manifest.yml").write_text(yaml.safe_dump(manifest))
    kube_proxy_without_strict_arp(kube)

    def restore(preflight_force, check_kube_proxy, restore_force):
        return run_playbook("playbooks/restore-chapter.yml", kube=kube,
                            extra_vars={"chapter": "1", "lab_saves_dir": str(tmp_path / "saves"),
                                        "lab_preflight_passed": True},
                            cli_vars={"lab_preflight_force": preflight_force,
                                      "lab_preflight_check_kube_proxy": check_kube_proxy,
                                      "chapter_restore_force": restore_force})

    preflight = "Check that the cluster answers and read its nodes' addresses"
    for forms in (("false", "true", "false"), ("no", "yes", "no")):
        mark = kube.mark()
        result = restore(*forms)
        # already checked in this run: the preflight is skipped; a foreign save is refused unforced
        assert result.rc != 0 and "saved from another cluster" in flat(result.stdout), (forms, result)
        assert preflight not in result.stdout
        assert kube.writes(mark) == []
    for forms in (("true", "true", "true"), ("yes", "yes", "yes")):
        mark = kube.mark()
        result = restore(*forms)
        # forced: the preflight runs again and stops at kube-proxy, before the restore
        assert result.rc != 0 and "without strictARP" in flat(result.stdout), (forms, result)
        assert kube.writes(mark) == []
    for forms, changed in ((("True", "no", "yes"), True), (("1", "false", "true"), False)):
        result = restore(*forms)
        # the kube-proxy check is off: the preflight passes and the forced restore goes ahead, then converges
        assert result.rc == 0 and preflight in result.stdout, (forms, result)
        assert (result.changed > 0) is changed, (forms, result)
    assert kube.get("v1", "Service", "tomcat", "microservice") is not None


def test_an_invalid_value_is_refused_by_name_before_anything_runs(kube):
    mark = kube.mark()
    result = run_playbook("playbooks/routes.yml", kube, extra_vars=ROUTES,
                          cli_vars={"lab_verify_fail": "maybe", "lab_wait_timeout": "5m", "reset_confirm": "perhaps"})
    assert result.rc != 0, result
    message = flat(result.stdout + result.stderr)
    assert "lab_verify_fail='maybe' is not a valid bool" in message, result
    assert "lab_wait_timeout='5m' is not a valid int" in message
    assert "reset_confirm='perhaps' is not a valid bool" in message
    assert "TASK [" not in result.stdout  # not one task ran
    assert kube.requests(mark) == []


FORMS = {"false": False, "No": False, "true": True, "yes": True}
# One run: each form typed on the command line as its own variable, handed to the template unchanged.
PLAYBOOK = textwrap.dedent("""\
    - name: Render the node roles' templates as the roles do
      hosts: localhost
      connection: local
      gather_facts: false
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
      tasks:
        - name: Render a registry mirror's hosts.toml
          ansible.builtin.template:
            src: TEMPLATES/node_prep/templates/hosts.toml.j2
            dest: "{{ out }}/hosts-{{ form }}.toml"
            mode: "0644"
          vars:
            item: docker.io
            node_prep_registry_mirror: mirror.127.0.0.1.nip.io
            node_prep_registry_mirror_skip_verify: "{{ lookup('ansible.builtin.vars', 'typed_' ~ form) }}"
          loop: FORMS
          loop_control:
            loop_var: form
    """)


def test_node_prep_template_booleans_typed_as_text(tmp_path):
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK.replace("TEMPLATES", str(REPO / "roles")).replace("FORMS", json.dumps(list(FORMS))))
    result = run_playbook(playbook, inventory="localhost,", extra_vars={"out": str(tmp_path)},
                          cli_vars={f"typed_{form}": form for form in FORMS})
    assert result.rc == 0, result
    for form, skip in FORMS.items():
        assert ("skip_verify = true" in (tmp_path / f"hosts-{form}.toml").read_text()) is skip, form
