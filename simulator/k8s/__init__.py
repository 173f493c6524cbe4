"""Kubernetes input: resource quantities, manifest documents and Node lists.

Nothing here talks to a cluster: these modules read what ``kubectl get ... -o json|yaml``
prints and turn it into the simulator's own types.
"""
