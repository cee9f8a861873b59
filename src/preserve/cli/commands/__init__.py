"""The `preserve` subcommands, one module per group: `ingest` (ingest, watch, retry), `aips` (show,
list, premis, access), `storage` (restore, replicate, audit) and `operate` (status, alerts,
embargo-release, services, serve, demo). Each command takes the parsed arguments, prints, and
returns an exit code; importing them loads neither Prefect nor the catalog (those are imported
inside the commands that use them)."""
