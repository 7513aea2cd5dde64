"""Benchmarks: run by `make bench`, never by `make test`. They print, side by side,
cleanroom against a baseline measured in the same run on the same machine."""
