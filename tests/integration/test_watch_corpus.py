"""The real-media corpus tier: the watcher over a copy of ../shared/corpus (third-party samples:
odd containers, broken and truncated files, subtitles, schemas, a virus test file). Every file
must end up ingested or quarantined with a reason, and nothing may crash the watcher.
Runs when PRESERVE_CORPUS points at a gathered corpus (scripts/test.sh sets it); skipped otherwise.
Deselect with `-m "not corpus"`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.intake import watch
from preserve.pipeline import IngestResult, ingest_submission
from tests.support import isolated_settings

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _corpus() -> Path:
    root = os.environ.get("PRESERVE_CORPUS", "")
    if not root or not (Path(root) / "MANIFEST.tsv").is_file():
        pytest.skip("no corpus: set PRESERVE_CORPUS to a folder made by ../shared/corpus/get_corpus.sh")
    return Path(root)


def test_watcher_over_the_real_corpus(s3_settings: Settings, tmp_path: Path) -> None:
    corpus = _corpus()
    # small proxies and one verified replica: the tier is about robustness, not throughput
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        ingest={"stable_seconds": 0.2, "poll_seconds": 0.1},
        proxy={"max_height": 240},
        replication={"min_verified_replicas": 1},
    )
    catalog = Catalog(settings.catalog_url)
    dropped: dict[str, str] = {}
    for src in sorted(p for p in corpus.rglob("*") if p.is_file() and "_downloads" not in p.parts):
        name = "__".join(src.relative_to(corpus).parts)  # every file a submission of its own
        shutil.copyfile(src, settings.ingest_dir / name)
        dropped[name] = hashlib.sha256(src.read_bytes()).hexdigest()

    took: dict[str, float] = {}

    def timed(path: Path) -> IngestResult:
        t0 = time.monotonic()
        try:
            return ingest_submission(settings, catalog, path)
        finally:
            took[path.name] = round(time.monotonic() - t0, 1)

    started = time.monotonic()
    report = watch.watch_once(settings, catalog, timed)
    elapsed = time.monotonic() - started

    handled = {h.submission: h for h in report.handled}
    assert [h for h in report.handled if h.status == "error"] == []  # nothing crashed
    assert set(handled) == set(dropped), set(dropped) ^ set(handled)
    assert sorted(p.name for p in settings.ingest_dir.iterdir()) == ["done", "failed"] or sorted(
        p.name for p in settings.ingest_dir.iterdir()
    ) == ["done"]
    stored = {a.submission_name: a for a in catalog.list_aips()}
    reasons: dict[str, str] = {}
    for name, sha in dropped.items():
        h = handled[name]
        if h.status == "stored":
            aip = catalog.get_aip(stored[name].id)
            assert [f.sha256 for f in aip.files if f.path == f"data/objects/{name}"] == [sha]
            assert hashlib.sha256((settings.done_dir / name).read_bytes()).hexdigest() == sha
        else:
            assert h.status in ("quarantined", "duplicate"), h
            if h.status == "quarantined":
                folder = settings.failed_dir / name
                rep = json.loads((folder / "report.json").read_text(encoding="utf-8"))
                assert rep["code"] and rep["message"] and rep["advice"], rep  # a reason a person can act on
                assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha  # untouched
                reasons[name] = f"{rep['code']}: {rep['message'].splitlines()[0][:120]}"
    summary = {
        "files": len(dropped),
        "stored": sum(h.status == "stored" for h in handled.values()),
        "quarantined": reasons,
        "seconds": round(elapsed, 1),
        "slowest": sorted(took.items(), key=lambda kv: -kv[1])[:8],
    }
    (tmp_path / "corpus-summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    catalog.close()
