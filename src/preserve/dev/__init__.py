"""For running preserve on one machine: `services` (the embedded SeaweedFS on loopback, started
and stopped through `daemon`, the one start/health/stop lifecycle of a detached server) and
`demo` (sample submissions ingested end to end, through an ingest function the CLI passes in)."""
