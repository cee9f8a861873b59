"""What people read: `dashboard` (the ingest-report markdown the flows publish as artifacts),
`views` (the JSON of an AIP and of `preserve status`), `tables` (plain aligned text). Pure
functions of values; no I/O."""
