"""pass@k evaluation on benchmarks; comparison of two evaluations."""
