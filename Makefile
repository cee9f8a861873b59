# Convenience targets; the scripts under scripts/ are the real entry points.
.PHONY: bench bench-quick

# The benchmark (issue 8): about 15 minutes on 2 cores; writes bench/results.json
bench:
	bash scripts/setup.sh && .venv/bin/python -m bench

# The same rows on small inputs, one run each: checks that the benchmark works
bench-quick:
	bash scripts/setup.sh && .venv/bin/python -m bench --quick
