"""Benchmarks of the Miloco integration against simulated baselines (see benchmarks/README.md)."""
