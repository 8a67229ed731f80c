"""Benchmarks behind ``nao bench``: each prints figures measured in this process."""
