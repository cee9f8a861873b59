"""Pure logic of replication: the events' wording. (The pure logic of resumable uploads, which
interrupted uploads can be adopted and when a part on the server is ours, is in test_multipart.)"""

from __future__ import annotations

import datetime as dt

from preserve.catalog import StoredObject
from preserve.core.errors import VerificationError
from preserve.storage.replication import TargetOutcome


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


def test_store_agent_names_the_library_that_wrote_the_copy() -> None:
    from preserve.storage import store_agent

    assert store_agent("s3").name == "boto3"
    assert store_agent("filesystem").name == "preserve"
