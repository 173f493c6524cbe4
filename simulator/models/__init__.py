"""Models on top of the core: network fabrics, failures, inference serving."""
