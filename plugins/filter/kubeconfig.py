"""Kubeconfigs istio-lab writes for someone else (a student's handout, a
student's namespace on a shared cluster, a cluster fetched for a lab).

The rule, wherever such a file is written: it holds one context, its one
cluster and its one user, ``current-context`` set to that context, every
certificate, key and CA embedded as ``-data`` (files read and inlined, so the
file works on another machine), and nothing else of the source (no other
context, cluster or user, no preferences, no extensions).

Filters
-------
``kubeconfig_minimal(source, context='', owner='', server='', files=True, content=False)``
    The minimal kubeconfig (a dict) for ``context`` (empty: the source's
    ``current-context``). ``source`` is a kubeconfig file path (``~``
    expanded) or an already parsed kubeconfig (a dict). File paths in the
    source (``certificate-authority``, ``client-certificate``,
    ``client-key``, ``tokenFile``) are read, ``~`` expanded, relative ones
    resolved against the kubeconfig file's directory as kubectl does; with
    ``files=False`` (a kubeconfig slurped from another machine, whose files
    are not here) they are refused. ``server`` replaces the cluster's API
    server URL. ``owner`` names whom the file is for in every refusal
    ("student alice").
    Refused (AnsibleFilterError, naming ``owner``): a missing context,
    cluster or user; credentials from an ``exec`` or ``auth-provider`` plugin
    (the other machine cannot be assumed to have the plugin, or the
    instructor's login); impersonation (the file would hold the
    impersonator's credentials); an unreadable file. Messages never hold a
    secret.

``kubeconfig_problems(source, context='', owner='', server='', files=True, content=False, peers=[],
                    allow_shared=False)``
    The same checks as a list of messages (empty: fine), for an
    ``ansible.builtin.assert`` that can show them while the task writing the
    file stays ``no_log``. ``peers``: the other people getting a kubeconfig
    in the same run, each ``{name, kubeconfig, context}`` or a ``[name,
    kubeconfig, context]`` list (``names | zip(kubeconfigs, contexts)``); one
    whose file would hold the same credentials (the same user credentials for
    the same API server, or the same user entry of the same kubeconfig file)
    is a problem unless ``allow_shared``. A user without
    any credential shares nothing. A peer whose own kubeconfig is refused is
    left to its own check.

``kubeconfig_cluster(source, context='', owner='', files=True, content=False)``
    ``{name, cluster}`` of the context's cluster alone (CA inlined), the
    user never read: for writing another user's kubeconfig for that cluster
    (shared_cluster_tenant).

``kubeconfig_yaml(config)``
    The YAML text of a kubeconfig built by ``kubeconfig_minimal``, always the
    same for the same content (keys in a fixed order), so that rewriting an
    unchanged file changes nothing.

``content=True``: ``source`` is the kubeconfig's text (a file slurped from
another machine) rather than a path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping

import yaml
from ansible.errors import AnsibleFilterError

# Fields kept, in the order written; anything else of the source is dropped.
CLUSTER_FIELDS = ("server", "certificate-authority-data", "tls-server-name", "insecure-skip-tls-verify", "proxy-url",
                  "disable-compression")
USER_FIELDS = ("client-certificate-data", "client-key-data", "token", "username", "password")
# File fields and the -data field they become (base64 of the file's bytes).
CLUSTER_FILES = {"certificate-authority": "certificate-authority-data"}
USER_FILES = {"client-certificate": "client-certificate-data", "client-key": "client-key-data"}
PLUGINS = {"exec": "an exec plugin", "auth-provider": "an auth-provider plugin"}
IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")
INSTEAD = ("give them a context whose user has a ServiceAccount token (kubectl create token <account> "
           "--duration=...) or a client certificate")


class KubeconfigError(AnsibleFilterError):
    """A kubeconfig that cannot be handed to its owner (the message says why; never a secret)."""


def _plain(value):
    """Ansible's (possibly tagged or lazy) containers and strings as plain Python data."""
    return json.loads(json.dumps(value))


def _named(entries, name, kind, where, owner):
    matches = [e for e in entries or [] if isinstance(e, Mapping) and e.get("name") == name]
    if not matches:
        raise KubeconfigError(f"{owner}: {where} has no {kind} named {name!r}")
    body = matches[0].get(kind)
    return dict(body) if isinstance(body, Mapping) else {}


def _parse(text, owner, where):
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Never the parser's message: it quotes the offending line, which may be a secret.
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"{owner}: {where} is not valid YAML{line}") from None
    if not isinstance(config, Mapping):
        raise KubeconfigError(f"{owner}: {where} is not a kubeconfig (no mapping at the top)")
    return config


def _load(source, owner, content=False):
    """(parsed kubeconfig, its directory or None, a description for messages)."""
    if isinstance(source, Mapping):
        return _plain(source), None, "the kubeconfig"
    if content:
        return _parse(str(source), owner, "the kubeconfig"), None, "the kubeconfig"
    if not isinstance(source, str) or not source.strip():
        raise KubeconfigError(f"{owner}: no kubeconfig given")
    path = os.path.abspath(os.path.expanduser(str(source).strip()))
    where = f"kubeconfig {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise KubeconfigError(f"{owner}: cannot read {where}: {exc.strerror}") from None
    return _parse(text, owner, where), os.path.dirname(path), where


def _read_file(value, field, entry, base_dir, files, owner, where):
    if not files:
        instead = "put the token itself in it" if field == "tokenFile" else f"embed it as {field}-data there"
        raise KubeconfigError(f"{owner}: {entry} in {where} names a file ({field}: {value}) of the machine the "
                              f"kubeconfig came from; {instead}")
    path = os.path.expanduser(str(value))
    if not os.path.isabs(path):
        if base_dir is None:
            raise KubeconfigError(f"{owner}: {entry} in {where} names a relative file ({field}: {value}) and the "
                                  "kubeconfig has no directory to resolve it against")
        path = os.path.join(base_dir, path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise KubeconfigError(f"{owner}: {entry} in {where}: cannot read {field} {path}: {exc.strerror}") from None


def _inline(body, file_fields, entry, base_dir, files, owner, where):
    """body with every file field replaced by its -data field (a -data field already there wins, as in kubectl)."""
    for field, data_field in file_fields.items():
        path = body.pop(field, None)
        if path and not body.get(data_field):
            body[data_field] = base64.b64encode(_read_file(path, field, entry, base_dir, files, owner,
                                                           where)).decode("ascii")
    return body


def _select(source, context, owner, content):
    """(config, base_dir, where, context name, context body, cluster name)."""
    config, base_dir, where = _load(source, owner, content)
    context_name = str(context or "").strip() or config.get("current-context") or ""
    if not context_name:
        raise KubeconfigError(f"{owner}: no context given and {where} has no current-context")
    context_body = _named(config.get("contexts"), context_name, "context", where, owner)
    cluster_name = context_body.get("cluster")
    if not cluster_name:
        raise KubeconfigError(f"{owner}: context {context_name!r} in {where} names no cluster")
    return config, base_dir, where, context_name, context_body, cluster_name


def _cluster(config, base_dir, where, cluster_name, owner, server, files):
    cluster = _named(config.get("clusters"), cluster_name, "cluster", where, owner)
    cluster = _inline(cluster, CLUSTER_FILES, f"cluster {cluster_name!r}", base_dir, files, owner, where)
    if server:
        cluster["server"] = str(server)
    if not cluster.get("server"):
        raise KubeconfigError(f"{owner}: cluster {cluster_name!r} in {where} has no server")
    return {k: cluster[k] for k in CLUSTER_FIELDS if k in cluster}


def _user(config, base_dir, where, context_name, user_name, owner, files):
    user = _named(config.get("users"), user_name, "user", where, owner)
    entry = f"user {user_name!r} (context {context_name!r})"
    for field, what in PLUGINS.items():
        plugin = user.get(field)
        if plugin:
            named = plugin.get("command" if field == "exec" else "name") if isinstance(plugin, Mapping) else None
            raise KubeconfigError(
                f"{owner}: {entry} in {where} gets its credentials from {what}"
                f"{f' ({named})' if named else ''}, which the recipient's machine cannot be assumed to have "
                f"(nor the login behind it); {INSTEAD}")
    impersonated = [field for field in IMPERSONATION if user.get(field)]
    if impersonated:
        raise KubeconfigError(
            f"{owner}: {entry} in {where} impersonates ({', '.join(impersonated)}): the file would hold the "
            f"impersonating identity's own credentials; {INSTEAD}")
    token_file = user.pop("tokenFile", None)
    if token_file:
        # client-go reads tokenFile over token: the same token, inlined.
        raw = _read_file(token_file, "tokenFile", entry, base_dir, files, owner, where)
        user["token"] = raw.decode("utf-8", "replace").strip()
    user = _inline(user, USER_FILES, entry, base_dir, files, owner, where)
    if bool(user.get("client-certificate-data")) != bool(user.get("client-key-data")):
        raise KubeconfigError(f"{owner}: {entry} in {where} has a client certificate without its key "
                              "or a key without its certificate")
    return {k: user[k] for k in USER_FIELDS if k in user}


def _build(source, context="", owner="", server="", files=True, content=False):
    owner = str(owner or "the kubeconfig's owner")
    config, base_dir, where, context_name, context_body, cluster_name = _select(source, context, owner, content)
    user_name = context_body.get("user")
    cluster = _cluster(config, base_dir, where, cluster_name, owner, server, files)
    user = _user(config, base_dir, where, context_name, user_name, owner, files) if user_name else None
    context_out = {"cluster": cluster_name}
    if user_name:
        context_out["user"] = user_name
    if context_body.get("namespace"):
        context_out["namespace"] = context_body["namespace"]
    result = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "contexts": [{"name": context_name, "context": context_out}],
        "current-context": context_name,
    }
    if user_name:
        result["users"] = [{"name": user_name, "user": user}]
    return result


def kubeconfig_minimal(source, context="", owner="", server="", files=True, content=False):
    return _build(source, context, owner, server, files, content)


def kubeconfig_cluster(source, context="", owner="", files=True, content=False):
    owner = str(owner or "the kubeconfig's owner")
    config, base_dir, where, _context_name, _body, cluster_name = _select(source, context, owner, content)
    return {"name": cluster_name, "cluster": _cluster(config, base_dir, where, cluster_name, owner, "", files)}


def _identities(config, source, content):
    """What makes two kubeconfigs the same identity: the same user credentials for the same API server, or the
    same user entry of the same kubeconfig file (whatever cluster it is used with)."""
    user = config["users"][0]
    canonical = json.dumps({"server": config["clusters"][0]["cluster"]["server"], "user": user["user"]},
                           sort_keys=True)
    found = {hashlib.sha256(canonical.encode()).hexdigest()}
    if isinstance(source, str) and not content:
        found.add(f"{os.path.realpath(os.path.expanduser(source.strip()))}#{user['name']}")
    return found


def _peer(peer):
    """A peer as {name, kubeconfig, context}, from a mapping or a [name, kubeconfig, context] list (zip)."""
    if isinstance(peer, Mapping):
        return str(peer.get("name")), peer.get("kubeconfig"), peer.get("context") or ""
    name, kubeconfig, *rest = list(peer) + [""] * (3 - len(peer))
    return str(name), kubeconfig, (rest[0] if rest else "") or ""


def kubeconfig_problems(source, context="", owner="", server="", files=True, content=False, peers=(),
                        allow_shared=False):
    try:
        own = _build(source, context, owner, server, files, content)
    except KubeconfigError as exc:
        return [str(exc.message)]
    if allow_shared or not peers or not (own.get("users") or [{}])[0].get("user"):
        return []  # nothing to share: no peers, or no credentials at all (an anonymous or empty user)
    own_ids = _identities(own, source, content)
    sharing = []
    for peer in peers:
        name, kubeconfig, peer_context = _peer(peer)
        try:
            other = _build(kubeconfig, peer_context, name)
        except (KubeconfigError, TypeError):
            continue  # that kubeconfig's own check reports it
        if other.get("users") and own_ids & _identities(other, kubeconfig, False):
            sharing.append(name)
    if not sharing:
        return []
    user = (own.get("users") or [{"name": "(none)"}])[0]["name"]
    return [f"{owner or 'the kubeconfig'} would get the same credentials (user {user!r} of "
            f"{own['clusters'][0]['cluster']['server']}) as {' and '.join(sorted(sharing))}: give each their own "
            "context and user, or set classroom_handout_allow_shared_credentials: true if they are meant to "
            "share them"]


def kubeconfig_yaml(config):
    if not isinstance(config, Mapping):
        raise AnsibleFilterError("kubeconfig_yaml expects a kubeconfig (a mapping)")
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False, width=1_000_000)


class FilterModule:
    def filters(self):
        return {
            "kubeconfig_minimal": kubeconfig_minimal,
            "kubeconfig_cluster": kubeconfig_cluster,
            "kubeconfig_problems": kubeconfig_problems,
            "kubeconfig_yaml": kubeconfig_yaml,
        }
