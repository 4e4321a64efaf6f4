"""Converge time and API cost of the lab's Istio objects, istio-lab's modules against the usual ways."""
