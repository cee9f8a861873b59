"""S3-compatible object stores (boto3), along their seams: `store` (the S3Store facade), `client`
(client set-up and the one retry layer every request passes through), `errors` (the botocore →
preserve.core.errors table), `multipart` (part plans, pure), `upload` (single PUT and resumable
multipart uploads), `verify` (source, checksum, retention and read-back checks), `lock` (Object
Lock), `download` (resumable downloads). Side effects: none on import, beyond importing boto3."""

from preserve.storage.s3.multipart import UploadedPart, composite_sha256, part_size_for
from preserve.storage.s3.store import S3Store

__all__ = ["S3Store", "UploadedPart", "composite_sha256", "part_size_for"]
