"""Benchmarks of Conveyor against the physical limits of the machine (see bench/README.md)."""
