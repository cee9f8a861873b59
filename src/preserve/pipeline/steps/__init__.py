"""The ingest steps, one module each, in pipeline order: receive (scan, stage) → describe
(characterise) → validate → normalise → derive (make_access) → package → replicate → publish →
record (record, accession). Each step is a plain function `step(ctx, *inputs) -> Output`: its
signature says what it needs and what it gives; its output is a small frozen value defined beside it."""
