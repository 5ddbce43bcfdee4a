"""Benchmarks: each compares medlake with a baseline measured in the same run, and writes ratios."""
