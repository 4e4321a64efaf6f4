# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio-lab's Kubernetes layer for the Istio resource modules.

client.py   connection (kubeconfig, K8S_AUTH_*), request counting, retries
resource.py the Istio kinds, list/create/replace/delete, CRD schema
normalize.py  canonical form of specs and the before/after comparison
validate.py schema (unknown fields are errors) and Istio's own rules
routes.py   the effective route table (pure)
apply.py    the apply engine the three resource modules share
args.py     the shared argument spec
"""
