"""The tools' reports kept in the bag name the payload path, never the local directory read."""

from __future__ import annotations

import json
from pathlib import Path

from preserve.pipeline.steps.describe import as_payload_paths, local_root


def test_the_local_root_is_the_folder_that_stands_for_data_objects() -> None:
    assert local_root(Path("/srv/ingest/夜行 night/sub/a.mp4"), "sub/a.mp4") == "/srv/ingest/夜行 night/"
    assert local_root(Path("/srv/ingest/a.mp4"), "a.mp4") == "/srv/ingest/"
    # a name normalised to NFC on receipt: the file's own folder
    assert local_root(Path("/srv/ingest/x/cafe\u0301.mp4"), "café.mp4") == "/srv/ingest/x/"


def test_reports_in_json_and_xml_keep_no_local_path() -> None:
    local = '/srv/ingest/Tom & "Jerry"/'
    data = {"CompleteName": local + "a.mp4", "FolderName": local.rstrip("/"), "filename": "file:" + local + "a.mp4"}
    out = as_payload_paths(json.dumps(data, ensure_ascii=False), local, "json").decode()
    assert json.loads(out) == {
        "CompleteName": "data/objects/a.mp4",
        "FolderName": "data/objects",
        "filename": "file:data/objects/a.mp4",
    }
    xml = '<CompleteName>/srv/ingest/Tom &amp; "Jerry"/a.mp4</CompleteName><FolderName>/srv/ingest/Tom &amp; "Jerry"</FolderName>'
    out = as_payload_paths(xml, local, "xml").decode()
    assert "/srv/ingest" not in out and "Jerry" not in out
    assert "<CompleteName>data/objects/a.mp4</CompleteName>" in out
