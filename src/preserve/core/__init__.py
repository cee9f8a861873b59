"""The bottom layer, imported by everything and importing nothing of preserve: plain values and the
enums of every status word (`model`), the one exception tree (`errors`) and the one redaction of
its text for everything that leaves the local quarantine report (`redact`), the one atomic write
(`fs`), the one retry policy (`retry`), byte meters for progress (`progress`), and sizes for
people (`units`). No side effects at import; only `fs` touches the disk."""
