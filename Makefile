# Convenience targets; the scripts under scripts/ are the real entry points.
.PHONY: bench bench-quick

# The benchmark (issues 8 and 13): under about 25 minutes on 2 cores, once its inputs are cached
# (the first run also makes them: a 2 GB file, a 60 s 1080p clip, 1 h and 3 h tiny films);
# writes bench/results.json, with the README's table in it
bench:
	bash scripts/setup.sh && .venv/bin/python -m bench

# The same rows on small inputs, one run each: checks that the benchmark works
bench-quick:
	bash scripts/setup.sh && .venv/bin/python -m bench --quick
