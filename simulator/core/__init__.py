"""The simulation core: time, state, the event loop, placement, and the policy interface."""
