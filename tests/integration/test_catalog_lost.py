"""If the catalog is lost: the replicas alone give it back. A varied set of AIPs (a single file, a
folder with subtitles, an embargoed film, a dark film, one withdrawn, one deaccessioned; one
amended twice; an audit that repaired a damaged object) is recorded, the catalog is removed, and
`preserve catalog rebuild --from TARGET` builds it again from each target in turn (real SeaweedFS
and a filesystem replica; SQLite, and a real PostgreSQL where marked): every AIP's `show --json`
equals the one saved before, except the fields the README's "If the catalog is lost" section
names; every version restores as a valid bag; the next audit is clean; amend uploaded no payload
byte."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.operations import audit
from preserve.pipeline import ingest_submission
from tests.mediafactory import make_clip
from tests.support import isolated_settings, write_config

EMBARGO = dt.date(2031, 1, 2)


def _files_under(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _comparable(shown: dict[str, Any]) -> dict[str, Any]:
    """`show --json` without what a rebuild adds by design: its own inventory events (the
    README's list of what is not recovered names them)."""
    out = dict(shown)
    out["events"] = [e for e in shown["events"] if not _rebuild_event(e)]
    return out


def _rebuild_event(e: dict[str, Any]) -> bool:
    return e["type"] == "fixity check" and "rebuil" in e["detail"]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_catalog_comes_back_from_each_replica(
    db: str, s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    urls: list[str] = []

    def new_url() -> str:
        if db == "sqlite":
            url = f"sqlite:///{tmp_path / f'catalog-{len(urls)}.sqlite'}"
        else:
            url = request.getfixturevalue("postgres_server").new_database()
        urls.append(url)
        return url

    archive = {"var_dir": str(tmp_path / "var"), "ingest_dir": str(tmp_path / "ingest"), "catalog_url": new_url()}
    settings = isolated_settings(s3_settings, tmp_path, archive=archive)
    config = tmp_path / "preserve.toml"
    write_config(settings, config)

    def run(*argv: str, url: str | None = None) -> tuple[int, str, str]:
        env = os.environ.get("PRESERVE__ARCHIVE__CATALOG_URL")
        if url:
            os.environ["PRESERVE__ARCHIVE__CATALOG_URL"] = url
        try:
            code = cli.main(["--config", str(config), *argv])
        finally:
            if url:
                if env is None:
                    os.environ.pop("PRESERVE__ARCHIVE__CATALOG_URL", None)
                else:
                    os.environ["PRESERVE__ARCHIVE__CATALOG_URL"] = env
        out, err = capsys.readouterr()
        return code, out, err

    catalog = Catalog(settings.catalog_url)
    inbox = settings.ingest_dir

    def ingest(path: Path) -> str:
        outcome = ingest_submission(settings, catalog, path)
        assert outcome.status == "stored", outcome.detail
        return outcome.aip_id

    def folder(name: str, sidecar: str, *, subtitles: bool = False) -> Path:
        d = inbox / name
        d.mkdir()
        make_clip(d / f"{name}.mp4", duration=1.0)
        if subtitles:
            (d / f"{name}.en.srt").write_text("1\n00:00:00,000 --> 00:00:00,900\nHello\n", encoding="utf-8")
            (d / f"{name}.zh.srt").write_bytes("1\n00:00:00,000 --> 00:00:00,900\n你好\n".encode("gb18030"))
        (d / "metadata.yaml").write_text(sidecar, encoding="utf-8")
        return d

    single = inbox / "single.mp4"
    make_clip(single, duration=1.0)
    ids = {"single": ingest(single)}
    ids["subtitled"] = ingest(
        folder("subtitled", "title: River Town\nyear: 2003\naccess: restricted\n", subtitles=True)
    )
    ids["embargoed"] = ingest(
        folder("embargoed", f"title: Held\naccess: {{level: embargoed, until: {EMBARGO.isoformat()}}}\n")
    )
    ids["dark"] = ingest(folder("dark", "title: Dark\naccess: dark\n"))
    ids["withdrawn"] = ingest(folder("withdrawn", "title: Shown Once\naccess: open\n"))
    doc = inbox / "letter.pdf"
    doc.write_bytes(b"%PDF-1.4\n" + os.urandom(30_000))
    ids["deaccessioned"] = ingest(doc)

    # amend one twice, counting what reaches the filesystem replica
    local_root = settings.target_path(settings.target("local")) / ids["subtitled"]
    before = _files_under(local_root)
    corrections = [
        ("title: River Town\nyear: 2004\naccess: restricted\n", "the year was wrong"),
        ("title: River Town (Part One)\nyear: 2004\naccess: open\n", "the title was incomplete; now open"),
    ]
    for n, (text, reason) in enumerate(corrections, start=2):
        side = tmp_path / f"amend-{n}.yaml"
        side.write_text(text, encoding="utf-8")
        code, out, err = run("--operator", "ana", "amend", ids["subtitled"], "--sidecar", str(side), "--reason", reason)
        assert code == 0, out + err
    after = _files_under(local_root)
    assert {k: v for k, v in before.items()} == {k: after[k] for k in before}  # nothing stored was changed
    new = {k: v for k, v in after.items() if k not in before}
    written = {k: v for k, v in new.items() if not k.startswith("events/")}
    assert written and all(k.startswith(("versions/v2/", "versions/v3/", "versions/v")) for k in written), written
    assert not any(k.endswith(".mp4") for k in written)  # no payload film again
    assert sum(written.values()) < 1_000_000

    # an audit that repairs a damaged object on the filesystem replica
    film_key = next(o.key for o in catalog.objects(ids["single"], "local") if o.key.endswith(".mp4"))
    damaged = settings.target_path(settings.target("local")) / film_key
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    report = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert report.exit_code == 1 and report.repairs, audit.format_report(report)
    assert audit.run_audit(settings, catalog, audit.AuditScope(full=True)).exit_code == 0

    # withdraw one; deaccession one by two people
    code, out, err = run(
        "--operator", "ana", "withdraw", ids["withdrawn"], "--reason", "the filmmaker is at risk", "--direct"
    )
    assert code == 0, out + err
    code, out, err = run("--operator", "alice", "deaccession", "request", ids["deaccessioned"], "--reason", "not ours")
    assert code == 0, err
    code, out, err = run("--operator", "bob", "deaccession", "approve", out.strip())
    assert code == 0, out + err

    # every operation wrote its events beside the AIP on every replica
    assert catalog.journal_aips_pending() == []
    saved = {}
    for name, aip_id in ids.items():
        code, out, err = run("show", aip_id, "--json")
        assert code == 0, err
        saved[name] = json.loads(out)
    assert saved["subtitled"]["version"] == 3 and [v["number"] for v in saved["subtitled"]["versions"]] == [1, 2, 3]
    assert saved["subtitled"]["versions"][2]["operator"] == "ana"
    assert saved["deaccessioned"]["status"] == "deaccessioned" and saved["withdrawn"]["access_level"] == "dark"
    code, out, _ = run("status", "--json")
    saved_status = json.loads(out)
    assert saved_status["journal_pending"] == 0
    catalog.close()

    rebuilt_urls: dict[str, str] = {}
    for source in ("seaweed", "local"):  # nothing that writes events runs between the two rebuilds
        url = new_url()  # the catalog is gone: a new, empty database
        rebuilt_urls[source] = url
        code, out, err = run("catalog", "rebuild", "--from", source, "--json", url=url)
        report = json.loads(out)
        assert code == 0 and report["clean"], out + err  # a healthy archive: nothing to report
        assert report["source"] == source and len(report["imported"]) == len(ids)
        for name, aip_id in ids.items():
            code, out, err = run("show", aip_id, "--json", url=url)
            assert code == 0, f"{source}: {name}: {err}"
            shown = json.loads(out)
            assert _comparable(shown) == _comparable(saved[name]), f"rebuilt from {source}: {name} differs"
        code, out, _ = run("status", "--json", url=url)
        status = json.loads(out)
        for key in ("aips", "bytes", "files", "formats", "targets", "objects"):
            assert status[key] == saved_status[key], key
        rebuilt = Catalog(url)
        try:
            from preserve.operations.embargo import embargo_until

            assert embargo_until(list(rebuilt.get_aip(ids["embargoed"]).events)) == EMBARGO
            assert rebuilt.get_aip(ids["embargoed"]).access_level.value == "embargoed"
            assert rebuilt.tombstone(ids["deaccessioned"]) is not None
        finally:
            rebuilt.close()
    for source, url in rebuilt_urls.items():
        # every version of every AIP still held restores as a valid bag
        for name, aip_id in ids.items():
            if name == "deaccessioned":
                continue
            for v in saved[name]["versions"]:
                dest = tmp_path / f"restore-{source}-{name}-{v['number']}"
                code, out, err = run("restore", aip_id, str(dest), "--version", str(v["number"]), url=url)
                assert code == 0, f"{source}: {name} v{v['number']}: {out}{err}"
                if name == "subtitled":
                    sidecar = (dest / aip_id / "data" / "objects" / "metadata.yaml").read_text(encoding="utf-8")
                    want = ["year: 2003", "year: 2004", "Part One"][v["number"] - 1]
                    assert want in sidecar
        # the next audit is clean
        code, out, err = run("audit", "--full", "--direct", url=url)
        assert code == 0, out + err
