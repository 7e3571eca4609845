"""inferhook benchmarks: `python -m bench` (or `make bench`) measures the service against
baselines run on the same machine in the same run, and writes bench/results/."""
