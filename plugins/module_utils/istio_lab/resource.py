# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Istio kinds istio-lab manages and the requests made for them: one LIST
per kind and namespace scope, create/replace/delete of single objects (always
with fieldValidation=Strict), and the CRD's schema."""

from __future__ import annotations

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError, KubeError

GROUP = "networking.istio.io"
DEFAULT_API_VERSION = GROUP + "/v1"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "istio-lab"
INSTALL_HINT = "install Istio first: playbooks/istio.yml"

# kind -> plural (the URL segment and the CRD name prefix)
PLURALS = {
    "Gateway": "gateways",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "ServiceEntry": "serviceentries",
}


class NotServed(KubeError):
    """The cluster does not serve the kind (its CRD is not installed)."""


def list_objects(client, base, plural, namespaces, kind, label_selector=None):
    """Every object of one kind in `namespaces` (None: all namespaces), keyed
    by (namespace, name), in as few LIST requests as the scope allows: one for
    one namespace or for all; several namespaces use one cluster-wide LIST and
    fall back to one LIST per namespace when the credentials may not list
    cluster-wide (a student's ServiceAccount). `label_selector` (a string
    such as ``app.kubernetes.io/managed-by=istio-lab``) narrows every LIST."""
    query = [("labelSelector", label_selector)] if label_selector else None
    if namespaces is not None and len(namespaces) == 1:
        paths = [f"{base}/namespaces/{next(iter(namespaces))}/{plural}"]
    else:
        paths = [f"{base}/{plural}"]
    try:
        items = _list_paths(client, paths, kind, query)
    except ApiStatusError as exc:
        if exc.status != 403 or namespaces is None or len(paths) == len(namespaces):
            raise
        items = _list_paths(client, [f"{base}/namespaces/{ns}/{plural}" for ns in sorted(namespaces)], kind, query)
    found = {}
    for item in items:
        meta = item.get("metadata", {})
        if namespaces is None or meta.get("namespace") in namespaces:
            found[(meta.get("namespace", ""), meta["name"])] = item
    return found


def _list_paths(client, paths, kind, query=None):
    items = []
    for path in paths:
        answer = client.request("list", "GET", path, query)
        api_version = answer.get("apiVersion", "")
        for item in answer.get("items", []):
            # core lists leave kind/apiVersion out of their items
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
            items.append(item)
    return items


class IstioResource:
    """Requests for one Istio kind at one API version."""

    def __init__(self, client, kind, api_version=DEFAULT_API_VERSION):
        if kind not in PLURALS:
            raise KubeError(f"istio-lab does not manage kind {kind}")
        group, _sep, version = api_version.partition("/")
        if group != GROUP or not version:
            raise KubeError(f"api_version must be {GROUP}/<version>, not {api_version!r}")
        self.client = client
        self.kind = kind
        self.api_version = api_version
        self.version = version
        self.plural = PLURALS[kind]
        self.base = f"/apis/{api_version}"

    def not_served_message(self):
        return (
            f"{self.kind} ({self.api_version}) is not served by the cluster at {self.client.describe()}: {INSTALL_HINT}"
        )

    def path(self, namespace, name=None):
        path = f"{self.base}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path

    def _call(self, verb, method, path, query=None, body=None):
        try:
            return self.client.request(verb, method, path, query, body)
        except ApiStatusError as exc:
            if exc.not_served:
                raise NotServed(self.not_served_message()) from None
            raise

    def list(self, namespaces):
        try:
            return list_objects(self.client, self.base, self.plural, namespaces, self.kind)
        except ApiStatusError as exc:
            if exc.not_served:
                raise NotServed(self.not_served_message()) from None
            raise

    def get(self, namespace, name):
        try:
            return self._call("get", "GET", self.path(namespace, name))
        except ApiStatusError as exc:
            if exc.status == 404:
                return None
            raise

    @staticmethod
    def _write_query(dry_run):
        query = [("fieldValidation", "Strict")]
        if dry_run:
            query.append(("dryRun", "All"))
        return query

    def create(self, obj, dry_run=False):
        verb = "create_dry_run" if dry_run else "create"
        namespace = obj["metadata"]["namespace"]
        return self._call(verb, "POST", self.path(namespace), self._write_query(dry_run), obj)

    def replace(self, obj, dry_run=False):
        verb = "update_dry_run" if dry_run else "update"
        meta = obj["metadata"]
        return self._call(verb, "PUT", self.path(meta["namespace"], meta["name"]), self._write_query(dry_run), obj)

    def delete(self, namespace, name):
        """Delete one object; False when it was already gone."""
        try:
            self._call("delete", "DELETE", self.path(namespace, name))
        except ApiStatusError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def schema(self):
        """The openAPIV3Schema the cluster enforces for this kind and version,
        or None when the credentials may not read CRDs."""
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{self.plural}.{GROUP}"
        try:
            crd = self.client.request("get", "GET", path)
        except ApiStatusError as exc:
            if exc.status in (401, 403, 404):
                return None
            raise
        for version in crd.get("spec", {}).get("versions", []):
            if version.get("name") == self.version:
                return (version.get("schema") or {}).get("openAPIV3Schema")
        return None


def read_route_objects(client, namespaces=None, api_version=DEFAULT_API_VERSION):
    """Read Gateways, VirtualServices, DestinationRules, ServiceEntries and
    Services (one LIST each per scope): {kind: [objects as the API serves them]}."""
    scope = set(namespaces) if namespaces else None
    read = {kind: list(IstioResource(client, kind, api_version).list(scope).values())
            for kind in PLURALS if kind != "ServiceEntry"}
    try:
        read["ServiceEntry"] = list(IstioResource(client, "ServiceEntry", api_version).list(scope).values())
    except ApiStatusError as exc:
        # A student's credentials (shared-cluster mode) may not read
        # ServiceEntries: the ingress routes do not need them.
        if exc.status != 403:
            raise
        read["ServiceEntry"] = []
    read["Service"] = list(list_objects(client, "/api/v1", "services", scope, "Service").values())
    return read


def table_of(read):
    """The route table (routes.route_table) of what read_route_objects read."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import route_table

    return route_table(read["Gateway"], read["VirtualService"], read["Service"], read["DestinationRule"],
                       read["ServiceEntry"])


def read_route_table(client, namespaces=None, api_version=DEFAULT_API_VERSION):
    """Read Gateways, VirtualServices, DestinationRules, ServiceEntries and
    Services (one LIST each per scope) and compute the route table
    (routes.route_table)."""
    return table_of(read_route_objects(client, namespaces, api_version))
