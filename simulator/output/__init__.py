"""Results of runs: metrics, result files, sweep reports, plots."""
