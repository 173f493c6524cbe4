"""Scripts that use the simulator's public API exactly as a user would."""
