"""The benchmark of preserve against the physical limit and against peers (issue 8): run it with
`python -m bench [--quick]` or `make bench`. It prepares its own data under bench/data/ (cached),
starts its own SeaweedFS on free loopback ports, prints a table of medians and ratios and writes
bench/results.json."""
