"""The settings schema: one frozen model per [section] of config/preserve.toml and the `Settings`
root with its derived paths. A plain description; no side effects (nothing here reads a file or
the environment: `preserve.config.load` does). Secrets are never part of it: the environment
variables that hold them are named here, and read by whoever opens a store or sends a mail."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from preserve.core.errors import ConfigError
from preserve.core.model import AccessLevel

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "preserve.toml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveSettings(_Model):
    organization: str = "Independent Film Archive"
    var_dir: Path = Path("../var")
    ingest_dir: Path | None = None  # default: <var>/ingest
    catalog_url: str = ""  # default: sqlite:///<var>/catalog.sqlite


class IngestSettings(_Model):
    stable_seconds: float = 30.0  # a submission must be unchanged this long before it is taken
    poll_seconds: float = 10.0
    decode_check: bool = True
    tool_timeout_seconds: float = 6 * 3600
    lease_seconds: float = 3600.0  # a claim older than this without renewal is taken over
    #: metadata sidecars: refused (quarantined) over this size or nesting depth; anchors and
    #: aliases are always refused (preserve.intake.sidecar)
    sidecar_max_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    sidecar_max_depth: int = Field(default=8, ge=2, le=64)
    #: what a `contributor_id` must look like (a regular expression the whole value must match):
    #: an archive-assigned code, never a name; the default takes PSN-0042 and contrib-42
    pseudonym_pattern: str = r"[A-Za-z]{2,7}-[0-9]{1,8}"
    #: in-place: the originals are hashed and uploaded where they lie in the ingest folder (local
    #: disk: only what preserve writes); copy: each original is first copied into staging (local
    #: disk: the whole payload again), for an ingest folder on a slow network share
    staging: Literal["in-place", "copy"] = "in-place"

    @field_validator("pseudonym_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class ProxySettings(_Model):
    max_height: int = 1080
    crf: int = 23
    preset: str = "veryfast"
    audio_bitrate: str = "128k"
    poster_at_fraction: float = 0.1


class ValidationSettings(_Model):
    """Validation beyond the decode check (which `ingest.decode_check` switches)."""

    mediaconch: bool = True  # MediaConch implementation checks of Matroska/FFV1 files
    framemd5: bool = True  # framemd5 sidecar of every video and audio stream of each original
    virus_check: bool = True  # ClamAV, when installed with a signature database
    clamav_database: Path | None = None  # default: clamscan's own (/var/lib/clamav)
    #: files larger than this are not scanned (event "not performed"): ClamAV's own default is
    #: 100 MB, above which it answers OK without scanning; it cannot scan 2 GiB or more at all
    virus_scan_max_mb: int = Field(default=100, ge=1, le=2047)


class NormalizationSettings(_Model):
    """FFV1 level 3 / Matroska preservation masters, beside the originals (always kept)."""

    #: lossless-only: uncompressed and lossless-intended sources (v210, rawvideo, FFV1 below
    #: level 3, ...) get a master; lossy sources never do. never: no masters at all.
    policy: Literal["lossless-only", "never"] = "lossless-only"
    #: flac: integer PCM of up to 24 bits becomes FLAC, anything else is copied; copy: all copied
    audio: Literal["flac", "copy"] = "flac"
    slices: int = 16


class AccessSettings(_Model):
    """Where access copies go, by access level, and the cataloguers' contact sheet. Restricted
    and embargoed copies go to the access target's bucket under these prefixes instead of its
    own (public) prefix; a filesystem access target gets sibling directories. Which level is
    served from where is access policy (`preserve.access.policy`); this says where the places are."""

    #: the level of a submission whose sidecar makes no access decision: private by default
    #: (copies made and kept at the restricted location, nothing public); "open" publishes them,
    #: "dark" makes none. An embargo needs a date, so it is never a default.
    default_level: Literal["restricted", "open", "dark"] = "restricted"
    restricted_prefix: str = "restricted"
    embargo_prefix: str = "embargoed"
    contact_sheet: bool = True
    contact_sheet_frames: int = Field(default=12, ge=1, le=100)
    contact_sheet_columns: int = Field(default=4, ge=1, le=10)
    contact_sheet_tile_width: int = Field(default=320, ge=32, le=1920)
    #: the public http(s) URL the open access location is served under (its AIPs' folders below
    #: it: <public_base_url>/<AIP id>/manifest.json), for the ids of the IIIF manifests; "" names
    #: the copies by their storage URI (s3://..., file://...) until the archive serves them
    public_base_url: str = ""
    #: the same for the restricted location (served to reading-room users only), "" likewise
    restricted_base_url: str = ""
    #: text subtitles become WebVTT access tracks (issue 15); bitmap ones are recorded only
    subtitle_tracks: bool = True
    #: a subtitle file bigger than this is not converted (a warning): a feature film's subtitles
    #: are a few hundred KB, and a file of many MB is not a subtitle file
    subtitle_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    @field_validator("public_base_url", "restricted_base_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value, flags=re.IGNORECASE):
            raise ValueError(f"must be an http(s) URL without query or fragment, got {value!r}")
        # the form the IIIF model writes ids in: lower-case scheme and host, no default port,
        # the path percent-encoded; a folder, so it ends with "/"
        normal = str(AnyUrl(value if value.endswith("/") else value + "/"))
        return normal if normal.endswith("/") else normal + "/"

    def private_place(
        self, base: TargetSettings, level: Literal[AccessLevel.RESTRICTED, AccessLevel.EMBARGOED]
    ) -> dict[str, str | Path]:
        """The fields of ``base`` (the access target) that change for one private level: its
        prefix in the same bucket, or the sibling directory ``<path>-<level>``."""
        if base.kind == "filesystem" and base.path is not None:
            return {"path": base.path.parent / f"{base.path.name}-{level.value}"}
        return {"prefix": self.restricted_prefix if level is AccessLevel.RESTRICTED else self.embargo_prefix}


class ServiceSettings(_Model):
    """The embedded SeaweedFS server (`preserve services up`)."""

    enabled: bool = True
    data_dir: Path | None = None  # default: <var_dir>/services
    #: every SeaweedFS port is derived from this one (s3 = base, the others base+1..base+9)
    port_base: int = 8333
    buckets: list[str] = Field(default_factory=lambda: ["preserve-aips", "preserve-access"])
    object_lock_buckets: list[str] = Field(default_factory=list)

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port_base}"


class TargetSettings(_Model):
    """One storage target: an S3-compatible bucket or a filesystem path."""

    name: str
    kind: Literal["s3", "filesystem"]
    # s3
    endpoint: str = ""  # "" with embedded=true means the embedded server
    embedded: bool = False
    bucket: str = ""
    prefix: str = ""
    region: str = "us-east-1"
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    storage_class: str = ""
    server_side_encryption: str = ""
    object_lock_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = ""
    object_lock_days: int = 0
    #: a deaccession (two people's decision) may delete GOVERNANCE-locked objects before their
    #: retention ends, with s3:BypassGovernanceRetention; otherwise, and always under COMPLIANCE,
    #: each deletion is scheduled for the day its retention ends and carried out by the audit
    allow_governance_bypass: bool = False
    profile: str = ""  # a named AWS profile, as an alternative to the *_env variables
    access_key_env: str = ""  # default PRESERVE_<NAME>_ACCESS_KEY_ID
    secret_key_env: str = ""  # default PRESERVE_<NAME>_SECRET_ACCESS_KEY
    read_back: bool = False  # after HEAD verification, also re-read and re-hash the object
    cold: bool = False  # cold storage class: audits only do the inventory check
    # filesystem
    path: Path | None = None
    # encryption (issue 16): who holds the copies, and whether they are age-encrypted
    #: "archive": storage the archive controls; "third-party": a provider's (another
    #: jurisdiction, anyone with read access there) - its copies must be encrypted unless
    #: ``allow_plaintext`` says otherwise
    custody: Literal["archive", "third-party"] = "archive"
    allow_plaintext: bool = False
    #: "age": every object is encrypted (age-encryption.org/v1) to a key of its AIP's own, that
    #: key wrapped to ``age_recipients``; object keys there are opaque
    encryption: Literal["", "age"] = ""
    #: age X25519 public keys ("age1..."); at least one should be a key kept offline
    age_recipients: list[str] = Field(default_factory=list)
    #: the variable naming a file with one of the recipients' identities (age-keygen's format);
    #: default PRESERVE_<NAME>_AGE_IDENTITY. Needed to read, restore, decrypt-audit and add to
    #: an AIP already there; never in a config file
    age_identity_env: str = ""

    @model_validator(mode="after")
    def _check(self) -> TargetSettings:
        if self.kind == "s3" and not self.bucket:
            raise ValueError(f"target {self.name!r}: an s3 target needs a bucket")
        if self.kind == "filesystem" and self.path is None:
            raise ValueError(f"target {self.name!r}: a filesystem target needs a path")
        if self.encryption == "age":
            if not self.age_recipients:
                raise ValueError(
                    f'target {self.name!r}: encryption = "age" needs age_recipients '
                    "(age X25519 public keys, age1...; make them with age-keygen)"
                )
            for i, r in enumerate(self.age_recipients):
                if not _is_age_recipient(r):
                    raise ValueError(
                        f"target {self.name!r}: age_recipients[{i}] is not an age X25519 public key "
                        "(age1... as printed by age-keygen -y)"
                    )
            if len(set(self.age_recipients)) != len(self.age_recipients):
                raise ValueError(f"target {self.name!r}: age_recipients lists a key twice")
        elif self.age_recipients:
            raise ValueError(f'target {self.name!r}: age_recipients is set but encryption is not "age"')
        if self.custody == "third-party" and not self.encryption and not self.allow_plaintext:
            raise ValueError(
                f'target {self.name!r}: custody = "third-party" keeps copies where the archive does '
                'not control who reads them; set encryption = "age" with age_recipients, or '
                "allow_plaintext = true to accept plaintext copies there"
            )
        return self

    @property
    def encrypted(self) -> bool:
        return self.encryption == "age"

    def identity_env_name(self) -> str:
        """The variable naming this target's age identity file."""
        return self.age_identity_env or f"{self._env_stem()}_AGE_IDENTITY"

    def _env_stem(self) -> str:
        return "PRESERVE_" + "".join(c if c.isalnum() else "_" for c in self.name.upper())

    def env_names(self) -> tuple[str, str]:
        stem = self._env_stem()
        return (self.access_key_env or f"{stem}_ACCESS_KEY_ID", self.secret_key_env or f"{stem}_SECRET_ACCESS_KEY")

    def credentials(self, env: Mapping[str, str]) -> dict[str, str] | None:
        """boto3 session kwargs from this target's own variables in ``env``, else its named
        profile; None when it has neither (an embedded target then uses the keys the embedded
        server generated: `preserve.dev.services.embedded_credentials`). Never a shared credential."""
        key_name, secret_name = self.env_names()
        if env.get(key_name) and env.get(secret_name):
            return {"aws_access_key_id": env[key_name], "aws_secret_access_key": env[secret_name]}
        if self.profile:
            return {"profile_name": self.profile}
        return None


def _is_age_recipient(text: str) -> bool:
    """Whether ``text`` parses as an age X25519 recipient (pyrage, the maintained implementation)."""
    from pyrage import RecipientError, x25519

    try:
        x25519.Recipient.from_str(text)
    except RecipientError:
        return False
    return True


def _location(t: TargetSettings) -> tuple[str, ...]:
    """Where a target's objects live, for telling whether two targets are the same place."""
    if t.kind == "filesystem":
        return ("filesystem", os.path.normpath(str(t.path)))
    endpoint = "embedded" if t.embedded and not t.endpoint else t.endpoint.rstrip("/")
    return ("s3", endpoint, t.bucket, t.prefix.strip("/"))


class ReplicationSettings(_Model):
    min_verified_replicas: int = 1
    #: files uploaded at the same time (over all targets); memory: one part per upload
    parallel_uploads: int = Field(default=4, ge=1, le=64)
    multipart_threshold_mb: int = Field(default=64, ge=5)
    #: tries of each request (part, PUT, HEAD, completion) on 5xx, timeouts, dropped connections
    max_attempts: int = Field(default=5, ge=1)
    #: wait before the first retry; doubled each time (with jitter), at most 60 s
    retry_backoff_seconds: float = Field(default=2.0, ge=0)


class AuditSettings(_Model):
    audit_interval_days: int = 90
    nightly_byte_budget_gb: float = 500.0
    cron: str = "0 2 * * *"


class AlertSettings(_Model):
    """Where operators are told about a failed ingest, damage found by an audit, or an AIP at
    risk: a webhook (generic JSON POST, or a Slack-compatible body) and/or email over SMTP.
    Empty webhook_url / smtp_host switch a channel off. The SMTP login comes from the
    environment only (the variables named here), never from this file."""

    webhook_url: str = ""  # may carry a token: prefer PRESERVE__ALERTS__WEBHOOK_URL in the environment
    webhook_format: Literal["json", "slack"] = "json"
    timeout_seconds: float = 10.0
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_from: str = "preserve@localhost"
    smtp_to: list[str] = Field(default_factory=list)
    smtp_username_env: str = "PRESERVE_SMTP_USERNAME"
    smtp_password_env: str = "PRESERVE_SMTP_PASSWORD"
    #: an undelivered alert is retried by later sweeps this many times in all
    max_attempts: int = 10

    def smtp_login(self, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(user, password) from the environment, or None to send without logging in."""
        # transitional: env=None (os.environ) until the callers pass their environment (issue 11)
        env = os.environ if env is None else env
        user, password = env.get(self.smtp_username_env, ""), env.get(self.smtp_password_env, "")
        return (user, password) if user and password else None


class ServeSettings(_Model):
    """`preserve serve`: the Prefect server with the dashboard, and the served deployments."""

    host: str = "127.0.0.1"  # the dashboard is for this machine unless you put a proxy in front
    port: int = 4200
    #: Prefect's own database; "" = SQLite under <var>/prefect. PostgreSQL:
    #: "postgresql+asyncpg://user@host/prefect" (or PREFECT_API_DATABASE_CONNECTION_URL)
    prefect_database_url: str = ""
    watch_interval_seconds: float = 120.0  # ingest-watch runs this often
    embargo_cron: str = "15 3 * * *"  # embargo-release, daily (UTC)
    #: how often alerts are swept (damage, AIPs at risk, undelivered) and dead runs reconciled
    housekeeping_minutes: float = 10.0


class CatalogSettings(_Model):
    """The catalog's own safekeeping: the scheduled online backup that `preserve serve` makes
    (`preserve catalog backup DEST` makes one by hand). SQLite catalogs only; a PostgreSQL
    catalog is backed up with pg_dump (the command says exactly what to run)."""

    #: where the scheduled backups go ("" = no scheduled backup); relative to the config file
    backup_dir: Path | None = None
    backup_every_hours: float = Field(default=24.0, gt=0)
    #: the newest this many scheduled backups are kept (older ones made by preserve are removed)
    backup_keep: int = Field(default=14, ge=1)

    @field_validator("backup_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if value == "" else value


class Settings(_Model):
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    services: ServiceSettings = Field(default_factory=ServiceSettings)
    replication: ReplicationSettings = Field(default_factory=ReplicationSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    targets: list[TargetSettings] = Field(default_factory=list)
    access_target: TargetSettings | None = None
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    normalization: NormalizationSettings = Field(default_factory=NormalizationSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    #: where the config file was read from; relative paths resolve against its directory
    source: Path | None = None

    @model_validator(mode="after")
    def _unique_targets(self) -> Settings:
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError(f"target names must be unique, got {names}")
        if self.access_target is not None and self.access_target.encrypted:
            raise ValueError(
                f"access target {self.access_target.name!r}: access copies are for viewers and "
                "are never encrypted (they carry nothing identifying); encryption is for replicas"
            )
        if self.access_target is not None and self.access_target.kind == "s3":
            public = self.access_target.prefix.strip("/")
            for private in (self.access.restricted_prefix, self.access.embargo_prefix):
                p = private.strip("/")
                if not p or not public or p == public or p.startswith(public + "/"):
                    raise ValueError(
                        f"access prefix {private!r} must differ from, and not lie under, the "
                        f"access target's public prefix {self.access_target.prefix!r}"
                    )
        # An ingest retry sweeps every object under <aip-id>/ at each access location; were one
        # the very place a replica is written, that sweep would delete the replica just uploaded.
        replicas = {_location(t): t.name for t in self.targets}
        if self.access_target is not None:
            base = self.access_target
            places = [base] + [
                base.model_copy(update=self.access.private_place(base, level))
                for level in (AccessLevel.RESTRICTED, AccessLevel.EMBARGOED)
            ]
            for level, where in zip(("open", "restricted", "embargoed"), places, strict=True):
                if _location(where) in replicas:
                    name = base.name if level == "open" else f"{base.name}-{level}"
                    raise ValueError(
                        f"access location {name!r} is the same place as replica target "
                        f"{replicas[_location(where)]!r}; give the access copies their own bucket, "
                        "prefix or path"
                    )
        if self.replication.min_verified_replicas > len(self.targets):
            raise ValueError(
                f"min_verified_replicas={self.replication.min_verified_replicas} but only "
                f"{len(self.targets)} target(s) are configured"
            )
        return self

    # -- derived paths -------------------------------------------------------------------------
    def resolve(self, p: Path) -> Path:
        base = self.source.parent if self.source else PROJECT_ROOT / "config"
        return (p if p.is_absolute() else base / p).resolve()

    @property
    def var_dir(self) -> Path:
        return self.resolve(self.archive.var_dir)

    @property
    def ingest_dir(self) -> Path:
        return self.resolve(self.archive.ingest_dir) if self.archive.ingest_dir else self.var_dir / "ingest"

    @property
    def done_dir(self) -> Path:
        return self.ingest_dir / "done"

    @property
    def failed_dir(self) -> Path:
        return self.ingest_dir / "failed"

    @property
    def staging_dir(self) -> Path:
        return self.var_dir / "staging"

    @property
    def services_dir(self) -> Path:
        return self.resolve(self.services.data_dir) if self.services.data_dir else self.var_dir / "services"

    @property
    def catalog_backup_dir(self) -> Path | None:
        """Where `preserve serve` puts the scheduled catalog backups; None: no scheduled backup."""
        return self.resolve(self.catalog.backup_dir) if self.catalog.backup_dir else None

    @property
    def catalog_url(self) -> str:
        return self.archive.catalog_url or f"sqlite:///{self.var_dir / 'catalog.sqlite'}"

    # -- targets -------------------------------------------------------------------------------
    def configured_targets(self) -> list[TargetSettings]:
        """The replica targets, then the access target: every target this file names."""
        return self.targets + ([self.access_target] if self.access_target is not None else [])

    def target(self, name: str) -> TargetSettings:
        """A configured target by name (the private access locations derived from the access
        target are found by `preserve.access.policy.target`)."""
        for t in self.configured_targets():
            if t.name == name:
                return t
        raise ConfigError(f"no storage target named {name!r}; known: {[t.name for t in self.configured_targets()]}")

    def target_path(self, target: TargetSettings) -> Path:
        assert target.path is not None
        return self.resolve(target.path)

    def endpoint_of(self, target: TargetSettings) -> str:
        if target.endpoint:
            return target.endpoint
        if target.embedded:
            return self.services.s3_endpoint
        return ""  # AWS default endpoint
