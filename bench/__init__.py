"""Parley's production profile (`make serve`), benchmarks (`make bench`) and their helpers."""
