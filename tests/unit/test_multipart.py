"""Pure planning of multipart uploads (storage.s3.multipart) and the checksum comparisons a
resume relies on: part sizes within S3's limits, which interrupted uploads can be adopted, when a
part on the server is provably ours, how server checksums compare with ours."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from preserve.core.errors import StorageError
from preserve.storage.s3.multipart import (
    MAX_PARTS,
    MiB,
    PendingUpload,
    UploadedPart,
    choose_upload,
    composite_sha256,
    fitting_part_size,
    part_count,
    part_holds,
    part_length,
    part_size_for,
)
from preserve.storage.s3.verify import b64_to_hex, same_checksum

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def part(number: int, size: int, etag: str = '"x"', checksum: str | None = None) -> UploadedPart:
    return UploadedPart(number, size, etag, checksum)


def pending(upload_id: str, *parts: UploadedPart, minutes: int = 0) -> PendingUpload:
    return PendingUpload(upload_id, T0 + dt.timedelta(minutes=minutes), parts)


# -- part sizes ----------------------------------------------------------------------------------
def test_part_size_fits_five_terabytes() -> None:
    size = 5 * 1024**4
    p = part_size_for(size, 64 << 20)
    assert p * 10_000 >= size and p % (1 << 20) == 0
    assert part_size_for(100 << 20, 64 << 20) == 64 << 20


def test_part_size_keeps_s3_minimum_and_refuses_what_s3_cannot_hold() -> None:
    assert part_size_for(12 * MiB, 1 * MiB) == 5 * MiB  # never under S3's 5 MiB minimum
    assert part_size_for(12 * MiB, 5 * MiB + 1) == 6 * MiB  # rounded up to a whole MiB
    with pytest.raises(StorageError, match="larger than S3 allows"):
        part_size_for(MAX_PARTS * (5 << 30) + 1, 64 * MiB)


def test_part_count_and_lengths_cover_the_file_exactly() -> None:
    size = 12 * MiB + 3
    assert part_count(size, 5 * MiB) == 3
    assert [part_length(n, 5 * MiB, size) for n in (1, 2, 3)] == [5 * MiB, 5 * MiB, 2 * MiB + 3]
    assert part_count(10 * MiB, 5 * MiB) == 2 and part_length(2, 5 * MiB, 10 * MiB) == 5 * MiB
    assert part_count(0, 5 * MiB) == 1  # an empty file is still one part


def test_composite_checksum_is_the_digest_of_the_part_digests_and_their_count() -> None:
    digests = [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]
    composite = composite_sha256(digests)
    assert composite == base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + "-2"
    assert b64_to_hex(composite) is None  # a composite is not a file digest
    whole = base64.b64encode(hashlib.sha256(b"ab").digest()).decode()
    assert b64_to_hex(whole) == hashlib.sha256(b"ab").hexdigest()
    assert b64_to_hex("not base64!") is None and b64_to_hex(base64.b64encode(b"short").decode()) is None


# -- which interrupted uploads fit ---------------------------------------------------------------
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


# -- which one is adopted ------------------------------------------------------------------------
def test_nothing_pending_means_a_new_upload() -> None:
    choice = choose_upload([], 18 * MiB, 5 * MiB)
    assert choice.chosen is None and choice.part_size == 5 * MiB
    assert choice.misfits == () and choice.outnumbered == ()


def test_the_fitting_upload_with_most_parts_is_adopted_and_the_others_aborted() -> None:
    other_file = pending("other", part(1, 7 * MiB), part(2, 5 * MiB))  # mixed sizes: not this file
    few = pending("few", part(1, 5 * MiB))
    most = pending("most", part(1, 5 * MiB), part(3, 5 * MiB))
    choice = choose_upload([other_file, few, most], 18 * MiB, 5 * MiB)
    assert choice.chosen == most and choice.part_size == 5 * MiB
    assert choice.misfits == (other_file,) and choice.outnumbered == (few,)


def test_a_tie_goes_to_the_upload_begun_last() -> None:
    older = pending("older", part(1, 5 * MiB), minutes=0)
    newer = pending("newer", part(2, 5 * MiB), minutes=5)
    choice = choose_upload([older, newer], 18 * MiB, 5 * MiB)
    assert choice.chosen == newer and choice.outnumbered == (older,)


def test_an_adopted_upload_keeps_its_own_part_size() -> None:
    choice = choose_upload([pending("u", part(1, 16 * MiB))], 150 * MiB, 64 * MiB)
    assert choice.chosen is not None and choice.part_size == 16 * MiB


def test_only_misfits_means_a_new_upload_and_every_misfit_aborted() -> None:
    a, b = pending("a", part(3, 64 * MiB)), pending("b", part(1, 1 * MiB))
    choice = choose_upload([a, b], 100 * MiB, 64 * MiB)
    assert choice.chosen is None and choice.part_size == 64 * MiB and choice.misfits == (a, b)


# -- proof that a part is ours, and checksum comparison ------------------------------------------
def test_a_part_is_ours_only_with_proof() -> None:
    data = b"film bytes" * 1000
    b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    md5 = hashlib.md5(data).hexdigest()
    assert part_holds(part(1, len(data), checksum=b64), data, b64)  # AWS lists the part's SHA-256
    assert not part_holds(part(1, len(data), etag=f'"{md5}"', checksum="other="), data, b64)  # SHA-256 wins
    assert part_holds(part(1, len(data), etag=f'"{md5}"'), data, b64)  # SeaweedFS: ETag is the MD5
    assert not part_holds(part(1, len(data), etag=f'"{hashlib.md5(b"x").hexdigest()}"'), data, b64)
    assert not part_holds(part(1, len(data), etag='"abc-2"'), data, b64)  # not an MD5: no proof, send again


def test_server_checksums_compare_by_digest_and_part_count() -> None:
    composite = composite_sha256([hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()])
    digest = composite.split("-")[0]
    assert same_checksum(composite, composite)
    assert same_checksum(digest, composite)  # moto reports a composite without "-N"
    assert not same_checksum(digest + "-3", composite)
    assert not same_checksum(None, composite) and not same_checksum("", composite)
    assert not same_checksum(base64.b64encode(b"\0" * 32).decode(), composite)
