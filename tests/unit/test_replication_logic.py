"""Pure logic of resumable uploads: which interrupted uploads can be adopted, when a part on the
server is provably ours, how server checksums compare with ours, and the events' wording."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

from preserve.catalog import StoredObject
from preserve.core.errors import VerificationError
from preserve.storage.replication import TargetOutcome
from preserve.storage.s3 import MiB, UploadedPart, _holds, _same_checksum, composite_sha256, fitting_part_size


def part(number: int, size: int, etag: str = '"x"', checksum: str | None = None) -> UploadedPart:
    return UploadedPart(number, size, etag, checksum)


def test_no_parts_fit_any_upload() -> None:
    assert fitting_part_size([], 100 * MiB, 64 * MiB) == 64 * MiB


def test_parts_of_the_same_part_size_fit() -> None:
    parts = [part(1, 64 * MiB), part(2, 64 * MiB)]
    assert fitting_part_size(parts, 150 * MiB, 64 * MiB) == 64 * MiB
    # the last, shorter part fits too
    assert fitting_part_size([part(1, 64 * MiB), part(3, 22 * MiB)], 150 * MiB, 64 * MiB) == 64 * MiB


def test_an_upload_started_with_another_threshold_is_adopted_with_its_part_size() -> None:
    parts = [part(1, 16 * MiB), part(2, 16 * MiB)]
    assert fitting_part_size(parts, 150 * MiB, 64 * MiB) == 16 * MiB


def test_parts_that_cannot_belong_to_this_file_do_not_fit() -> None:
    assert fitting_part_size([part(1, 7 * MiB)], 100 * MiB, 64 * MiB) is not None  # 7 MiB parts: possible
    assert fitting_part_size([part(1, 7 * MiB), part(2, 5 * MiB)], 100 * MiB, 64 * MiB) is None  # mixed sizes
    assert fitting_part_size([part(3, 64 * MiB)], 100 * MiB, 64 * MiB) is None  # past the end
    assert fitting_part_size([part(1, 1 * MiB)], 100 * MiB, 64 * MiB) is None  # under S3's minimum
    assert fitting_part_size([part(1, 5 * MiB)], 5 * 10_000 * MiB + 1, 64 * MiB) is None  # would need > 10,000


def test_a_part_is_ours_only_with_proof() -> None:
    data = b"film bytes" * 1000
    b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    md5 = hashlib.md5(data).hexdigest()
    assert _holds(part(1, len(data), checksum=b64), data, b64)  # AWS lists the part's SHA-256
    assert not _holds(part(1, len(data), etag=f'"{md5}"', checksum="other="), data, b64)  # SHA-256 wins
    assert _holds(part(1, len(data), etag=f'"{md5}"'), data, b64)  # SeaweedFS: ETag is the MD5
    assert not _holds(part(1, len(data), etag=f'"{hashlib.md5(b"x").hexdigest()}"'), data, b64)
    assert not _holds(part(1, len(data), etag='"abc-2"'), data, b64)  # not an MD5: no proof, send again


def test_server_checksums_compare_by_digest_and_part_count() -> None:
    composite = composite_sha256([hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()])
    digest = composite.split("-")[0]
    assert _same_checksum(composite, composite)
    assert _same_checksum(digest, composite)  # moto reports a composite without "-N"
    assert not _same_checksum(digest + "-3", composite)
    assert not _same_checksum(None, composite) and not _same_checksum("", composite)
    assert not _same_checksum(base64.b64encode(b"\0" * 32).decode(), composite)


def test_event_detail_says_how_it_was_verified() -> None:
    until = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)
    obj = StoredObject("vault", "a/b", 1, "0" * 64, until, lock_mode="COMPLIANCE", lock_until=until)
    out = TargetOutcome(
        "vault", "s3", objects=[obj, obj], parts=10, parts_reused=4, retries=2, read_back=True, seconds=1.5
    )
    text = out.detail()
    assert "2 objects stored and verified" in text and "read back" in text
    assert "4 of 10 parts reused" in text and "2 request(s) retried" in text
    assert "Object Lock COMPLIANCE until 2036-01-01" in text
    failed = TargetOutcome("vault", "s3", error=VerificationError("bad digest"))
    assert not failed.ok and failed.detail() == "bad digest"
