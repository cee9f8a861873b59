"""Age-encrypted replicas (age-encryption.org/v1): `age` is the file format, streamed and
deterministic per AIP key, name and plaintext digest (so uploads resume); `keys` the per-AIP keys,
their wrapping to a target's recipients and the identity files; `names` the opaque object names
and the encrypted name index; `store` the EncryptedStore that wraps a target's ObjectStore.
Side effects: none of the package itself (see each module)."""

from preserve.storage.crypt.store import EncryptedStore, as_stored, remembering_keys

__all__ = ["EncryptedStore", "as_stored", "remembering_keys"]
