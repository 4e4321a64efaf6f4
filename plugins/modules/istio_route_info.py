#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: istio_route_info
short_description: Read the effective Istio route table of a lab
version_added: "1.0.0"
author: istio-lab contributors (@istio-lab)
description:
  - Reads Gateways, VirtualServices, DestinationRules, ServiceEntries and Services (one LIST request each) and
    computes, the way Istio would, for each host and port at each gateway which VirtualService admits it and which
    Service (or ServiceEntry host), port and subset it reaches.
  - Reports the problems found, each naming the object and the field path -- a VirtualService bound to a gateway
    that does not exist, a host no server of its gateways admits, a destination Service or port that does not exist,
    a subset no DestinationRule defines, two VirtualServices claiming the same host on the same gateway port, route
    weights not summing to 100, a VirtualService whose C(exportTo) hides it from its gateway's Envoy, a port a
    ServiceEntry does not declare, a host sent out of the mesh through a gateway that no ServiceEntry declares.
  - Lists apart the routes bound to the C(mesh) gateway (what sidecars get), the routes that leave the mesh through
    an egress gateway (with the sidecar hop that sends the host to that gateway), and the ServiceEntries.
  - Never changes anything.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  namespaces:
    description:
      - Namespaces to read; all namespaces when left out.
      - Gateways and Services referenced from these namespaces but living elsewhere (C(istio-system)) must be in the
        list too, or they are reported as missing.
    type: list
    elements: str
    aliases: [namespace]
  api_version:
    description: API version of the Istio objects to read.
    type: str
    default: networking.istio.io/v1
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode (it only reads).
  - Short destination hosts resolve relative to the VirtualService's namespace (C(grafana) in C(istio-system) is
    C(grafana.istio-system.svc.cluster.local)); names with a dot are taken as written, as Istio does.
  - A route whose matches name gateways (C(http[].match[].gateways)) counts only for those gateways, as Istio's
    Egress Gateways task uses it (the C(mesh) match sends to the egress gateway, the egress gateway's match to the
    external host).
  - Endpoints are not read.
seealso:
  - module: istio_lab.lab.istio_gateway
  - module: istio_lab.lab.istio_virtual_service
  - module: istio_lab.lab.istio_destination_rule
  - module: istio_lab.lab.istio_service_entry
"""

EXAMPLES = r"""
- name: Read the route table of the lab
  istio_lab.lab.istio_route_info:
  register: lab_routes

- name: Fail when the lab's routes have problems
  ansible.builtin.assert:
    that: lab_routes.problems | length == 0
    fail_msg: "{{ lab_routes.problems | map(attribute='message') | list }}"

- name: Show which hosts allgateway serves
  ansible.builtin.debug:
    msg: "{{ lab_routes.hosts['istio-system/allgateway'] }}"
"""

RETURN = r"""
routes:
  description: One entry per gateway, port, host and VirtualService, sorted.
  returned: success
  type: list
  elements: dict
  contains:
    gateway:
      description: The gateway, C(namespace/name).
      type: str
    selector:
      description: The Gateway's C(spec.selector) (which gateway workload serves it, for example
        C(istio=ingressgateway) or C(istio=egressgateway)).
      type: dict
    port:
      description: The server port number.
      type: int
    protocol:
      description: The server protocol.
      type: str
    host:
      description: The host the route answers (the narrower of the server's and the VirtualService's).
      type: str
    virtual_service:
      description: The VirtualService, C(namespace/name).
      type: str
    destinations:
      description: Every destination of the VirtualService's routes, each with C(route) (C(http[0])), C(host) as
        written, C(fqdn), C(service) (C(namespace/name) or null for a host outside the cluster), C(port), C(subset),
        C(weight), C(service_exists) and C(port_exists); a host a ServiceEntry declares also has C(service_entry)
        (C(namespace/name)), and C(port_exists) then says whether the ServiceEntry declares the port.
      type: list
      elements: dict
  sample:
    - gateway: microservice/ingressgateway80
      selector: {istio: ingressgateway}
      port: 80
      protocol: HTTP
      host: "*"
      virtual_service: microservice/tomcat-virtualservice
      destinations:
        - route: http[0]
          host: tomcat.microservice.svc.cluster.local
          fqdn: tomcat.microservice.svc.cluster.local
          service: microservice/tomcat
          port: 80
          subset: null
          weight: 100
          service_exists: true
          port_exists: true
mesh_routes:
  description: One entry per VirtualService bound to the C(mesh) gateway (named in C(spec.gateways), or no gateways
    at all), the routes sidecars get rather than an ingress gateway.
  returned: success
  type: list
  elements: dict
  contains:
    virtual_service:
      description: The VirtualService, C(namespace/name).
      type: str
    hosts:
      description: Its hosts, short names expanded as Istio does.
      type: list
      elements: str
    exported_to:
      description: The namespaces whose sidecars see it (C(spec.exportTo), C(.) resolved); C(["*"]) for all.
      type: list
      elements: str
    destinations:
      description: As in RV(routes[].destinations).
      type: list
      elements: dict
  sample:
    - virtual_service: microservice/tomcat-canary
      hosts: [tomcat.microservice.svc.cluster.local]
      exported_to: [microservice]
      destinations: []
egress_routes:
  description: One entry per gateway route whose destinations leave the cluster (hosts ServiceEntries declare),
    that is traffic leaving the mesh through an egress gateway.
  returned: success
  type: list
  elements: dict
  contains:
    gateway:
      description: The egress Gateway, C(namespace/name).
      type: str
    selector:
      description: Its C(spec.selector).
      type: dict
    port:
      description: The server port number.
      type: int
    host:
      description: The external host.
      type: str
    virtual_service:
      description: The VirtualService bound to the gateway, C(namespace/name).
      type: str
    service_entries:
      description: The ServiceEntries declaring the destinations, C(namespace/name).
      type: list
      elements: str
    gateway_services:
      description: The Services fronting the gateway's workload (their selector holds the Gateway's).
      type: list
      elements: str
    mesh_hops:
      description: The C(mesh) routes that send the host to one of RV(egress_routes[].gateway_services), each with
        C(virtual_service), C(via) (the Services) and C(subsets). Empty when sidecars send the host straight out.
      type: list
      elements: dict
    destinations:
      description: The external destinations, as in RV(routes[].destinations).
      type: list
      elements: dict
  sample:
    - gateway: egress/istio-egressgateway
      selector: {istio: egressgateway}
      port: 80
      host: httpbin.org
      virtual_service: egress/external-through-egress-gateway
      service_entries: [egress/external-http]
      gateway_services: [istio-system/istio-egressgateway]
      mesh_hops:
        - virtual_service: egress/external-through-egress-gateway
          via: [istio-system/istio-egressgateway]
          subsets: [external]
      destinations: []
service_entries:
  description: The ServiceEntries read, each with C(service_entry) (C(namespace/name)), C(hosts), C(ports)
    (C(number), C(name), C(protocol)), C(resolution), C(location) and C(exported_to).
  returned: success
  type: list
  elements: dict
  sample:
    - service_entry: egress/external-http
      hosts: [httpbin.org]
      ports: [{number: 80, name: http-port, protocol: HTTP}]
      resolution: DNS
      location: MESH_EXTERNAL
      exported_to: ["*"]
problems:
  description: Problems found, each with C(kind), C(object) (C(Kind namespace/name)), C(field) and C(message).
    A VirtualService whose C(spec.exportTo) leaves out the namespace where its gateway's Envoy runs (the namespace
    of a Service whose selector holds the Gateway's selector) is reported here and left out of RV(routes).
  returned: success
  type: list
  elements: dict
  sample:
    - kind: VirtualService
      object: VirtualService istio-system/grafana-istio
      field: spec.http[0].route[0].destination.host
      message: Service istio-system/grafana (grafana.istio-system.svc.cluster.local) does not exist
hosts:
  description: The sorted distinct hosts each gateway (C(namespace/name)) routes.
  returned: success
  type: dict
  sample: {"istio-system/allgateway": ["grafana-istio.kubernets.cn", "kiali-istio.kubernets.cn"]}
api_requests:
  description: Number of API requests this call made, by verb.
  returned: always
  type: dict
  sample: {list: 5}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import route_info_argument_spec
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import read_route_table


def main():
    module = AnsibleModule(argument_spec=route_info_argument_spec(), supports_check_mode=True)
    params = module.params
    run_guarded(module, lambda client: {"changed": False,
                                        **read_route_table(client, params["namespaces"], params["api_version"])})


if __name__ == "__main__":
    main()
