"""preserve: an ingest pipeline for an archive of independent films.

The library (this package) does the work and never imports Prefect; ``flows/`` orchestrates it.
"""

__version__ = "0.1.0"
