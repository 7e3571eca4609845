"""Processes the benchmarks start: load generators, baselines and receivers.

Each runs as `python -m bench.tools.<name>`, in its own process, so it never shares an
event loop (or a core's worth of GIL) with the service under test.
"""
