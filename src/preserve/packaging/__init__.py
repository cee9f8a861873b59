"""Packaging: `bag` builds and validates BagIt 1.0 bags around bagit-python without re-reading the
payload (and under a lock, since bagit-python calls os.chdir); `premis` writes the PREMIS 3.0
record of every event and validates it against the XSD shipped in `schemas/`."""
