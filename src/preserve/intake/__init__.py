"""Intake, the first stage: what arrives in the ingest folder and what becomes of it before and
after the pipeline. `watch` finds complete submissions (stable, or marked READY); `submission`
scans one safely (NFC names, limits in bytes, no links or special files); `sidecar` reads its
metadata with a schema; `supplied` verifies the checksums and bags a submitter sent; `claims`
gives one worker a lease on it; `disposition` moves it to done/ or into failed/ with a report a
person can read; `release` puts a quarantined one back (`preserve retry`); `recovery` tidies up
after a crash. The source is never modified or deleted."""
