"""The one exception tree of preserve. Findings (fixity results, validation reports) are values;
these are for failures, when an operation cannot go on.

    PreserveError
    ├── ConfigError                 bad or missing configuration; usage errors (CLI exit 2)
    ├── ToolError                   an external program (ffmpeg, ffprobe, mediainfo, ...) failed
    │   ├── ToolNotFound            not installed / not on PATH
    │   └── ToolTimeout             ran past its time limit and was killed
    ├── SubmissionError             the submission itself is unacceptable (quarantine it)
    │   ├── UnsafeSubmission        symlinks, special files, hostile paths, names over limits
    │   ├── SidecarError            metadata sidecar malformed or invalid
    │   ├── SuppliedChecksumMismatch  checksums shipped with the submission do not match
    │   ├── MediaError              a media file is unreadable or does not decode
    │   └── SourceChanged           an original changed in the ingest folder while being ingested
    ├── PackagingError              a bag could not be built or does not validate
    ├── PrivacyError                an access copy still carries identifying metadata
    ├── StorageError                an object store failed
    │   ├── StorageUnavailable      unreachable, timed out, credentials refused (operational)
    │   ├── VerificationError       a stored object's size/checksum is not what we sent
    │   │   └── DecryptionFailed    an encrypted object fails age's authentication (damaged)
    │   ├── FeatureNotHonoured      the server silently ignored checksums / Object Lock
    │   ├── ObjectLocked            an operation was refused because the object is locked
    │   ├── ObjectMissing           a key that should exist does not
    │   └── KeyUnavailable          an AIP's key on an encrypted target cannot be had (identity, key object)
    ├── CatalogError                the catalog database refused an operation
    └── ClaimLost                   another worker took over a submission this one was ingesting

Third-party exceptions (botocore, sqlalchemy, subprocess) are translated at the module boundary
that calls the third party, so callers only ever catch these.

Two texts per error: the message (``str(exc)``), complete, for the local quarantine report
(REPORT.txt, report.json) an archivist reads; and ``exc.public``, what may be said anywhere else
(the catalog, logs, Prefect, alerts, the command line). A submission error can quote what the
submitter sent (sidecar values, a link's target, lines of a checksum file), so its public text is
the one given by the raise site (``public=...``, quoting only file names) or else a summary of
its kind; errors about the archive's own machinery (config, tools, storage, catalog) are public
as they are. `preserve.core.redact` applies this to any exception.
"""

from __future__ import annotations

#: where the complete text of a submission's failure is kept (the quarantine folder's report)
LOCAL_REPORT_HINT = "REPORT.txt in the quarantine folder says what and where"


class PreserveError(Exception):
    """Base of every error preserve raises on purpose."""

    #: what a person should do about it; printed in quarantine reports and by the CLI
    advice: str = "See the log for details and contact the archive's operator."
    #: for errors that can quote what a submitter sent: what is said beyond the local report when
    #: the raise site gave no ``public`` text (None: the message itself is public)
    public_summary: str | None = None

    def __init__(self, message: str, *, advice: str | None = None, public: str | None = None) -> None:
        super().__init__(message)
        if advice is not None:
            self.advice = advice
        self._public = public

    @property
    def public(self) -> str:
        """The failure as it may be told beyond the local report: never a value the submitter sent
        (sidecar values, link targets), at most file names of the submission."""
        public: str | None = getattr(self, "_public", None)
        if public is not None:
            return public
        if self.public_summary is not None:
            return f"{self.public_summary}; {LOCAL_REPORT_HINT}"
        return str(self)

    @property
    def code(self) -> str:
        """Stable machine-readable code, e.g. ``MediaError``; used in report.json."""
        return type(self).__name__


class ConfigError(PreserveError):
    advice = "Fix the configuration file or the environment variables, then run again."


class ToolError(PreserveError):
    advice = "Check that the tool is installed and works (run scripts/setup.sh)."

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        returncode: int | None = None,
        stderr: str = "",
        advice: str | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message, advice=advice, public=public)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class ToolNotFound(ToolError):
    pass


class ToolTimeout(ToolError):
    pass


class SubmissionError(PreserveError):
    advice = "Fix the submission and put it back with `preserve retry NAME`."
    public_summary = "the submission cannot be accepted as it is"


class UnsafeSubmission(SubmissionError):
    advice = (
        "The submission contains something that cannot be stored safely (a link, a device "
        "file, a hostile or over-long name). Replace it with plain files and retry."
    )
    public_summary = "the submission holds something that cannot be stored safely (a link, a special file, a bad name)"


class SidecarError(SubmissionError):
    advice = "Correct the metadata sidecar (the report gives the line) and retry."
    public_summary = "the metadata sidecar is invalid"


class SuppliedChecksumMismatch(SubmissionError):
    advice = (
        "A checksum supplied with the submission does not match the file: the copy is "
        "probably incomplete or damaged. Ask the filmmaker for a fresh copy, then retry."
    )
    public_summary = "a checksum supplied with the submission does not match what arrived"


class MediaError(SubmissionError):
    advice = (
        "The file does not decode: the copy may have been cut short in transfer. Ask for a "
        "fresh copy. If this is the only copy that exists, accept it as it is with "
        "`preserve retry NAME --accept-invalid`."
    )
    #: a tool's complaint about a submitted file can quote text from inside it (a playlist's paths)
    public_summary = "a media file of the submission cannot be read or does not decode"


class SourceChanged(SubmissionError):
    advice = (
        "A file of the submission changed while it was being ingested (it was probably still being "
        "copied into the ingest folder). Nothing was stored. Wait until the copy into the ingest "
        "folder is finished, then run `preserve retry NAME`."
    )
    public_summary = "a file of the submission changed while being ingested"


class PackagingError(PreserveError):
    advice = "The bag could not be built or validated; check free disk space in the staging area."


class PrivacyError(PreserveError):
    advice = (
        "Identifying metadata survived into the access copy. Nothing was published. "
        "Report this to the operator: the scrubbing profile needs fixing."
    )


class StorageError(PreserveError):
    advice = "Check the storage target's status and credentials, then retry."


class StorageUnavailable(StorageError):
    advice = (
        "A storage target could not be reached. Nothing was lost: the submission waits in "
        "failed/ with its source intact. Once storage is back, run `preserve retry NAME`."
    )


class VerificationError(StorageError):
    advice = "A stored copy did not verify against our checksum; it was not marked verified."


class FeatureNotHonoured(StorageError):
    advice = (
        "The storage server silently ignored a requested safety feature (checksums or "
        "Object Lock). Use a server that supports it or change the target's config."
    )


class ObjectLocked(StorageError):
    advice = "The object is under Object Lock retention and cannot be deleted or overwritten."


class ObjectMissing(StorageError):
    pass


class KeyUnavailable(StorageError):
    """An AIP's key on an encrypted target cannot be had: no identity is configured for the
    target, the identity given is not one of its recipients, or the AIP's key object is missing
    or damaged there (the message says which)."""

    advice = (
        "Set PRESERVE_<TARGET>_AGE_IDENTITY to a file holding one of the target's age identities "
        "(as written by age-keygen); a key object that is missing or damaged is put back from the "
        "catalog by `preserve audit` (repair), or from the escrow copy of `preserve keys export`."
    )


class DecryptionFailed(VerificationError):
    """An encrypted object failed age's authentication: it is truncated, tampered with, or not
    an age file at all."""

    advice = "The ciphertext is damaged: repair the replica from a good copy (`preserve audit`)."


class CatalogError(PreserveError):
    advice = "Check the catalog database connection and disk space."


class ClaimLost(PreserveError):
    """This worker's claim on a submission was taken over (its lease ran out while the catalog was
    unreachable, or the worker stalled): the other worker now owns the submission, its source and
    whatever is stored under its AIP id, so this one stops and touches none of it."""

    advice = "Nothing to do: the worker that took the submission over finishes it."
