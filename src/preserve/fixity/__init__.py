"""Fixity: `digest` computes SHA-256 and SHA-512 (and any supplied algorithm) in one streaming read,
copying at the same time; `framemd5` makes and compares per-frame manifests of every video and
audio stream. Never cached: a checksum always comes from reading the bytes."""
