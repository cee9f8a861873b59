"""The key operations of issue 16 without an S3 server: an AIP's key object on an encrypted
filesystem target checked against the catalog and put back from it; `preserve keys export` (file
modes, README, manifest, refusals, keys destroyed since an earlier export); what `preserve status`
says per target about encryption, custody and key objects not verified; the CLI's new arguments.
Identities come from the stock `age-keygen`, exported keys are opened with the stock `age`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.catalog import AipKeyRecord, Catalog
from preserve.catalog.views import with_targets
from preserve.cli.main import build_parser
from preserve.config import Settings
from preserve.core.errors import ConfigError
from preserve.core.model import Agent, utcnow
from preserve.operations import keys
from preserve.storage import open_store
from preserve.storage.crypt import EncryptedStore, remembering_keys
from preserve.storage.crypt.keys import AipKey, wrap
from tests.support import load_merged
from tests.unit.test_catalog_keys import _sealed
from tests.unit.test_catalog_versions import AIP

pytestmark = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None,
    reason="needs the stock age CLI (apt install age)",
)
OTHER = "1d2e3f40-2222-4b4b-9c9c-abcdefabcdef"


def keygen(path: Path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, Path]]:
    """Settings with an encrypted filesystem target "vault" (third-party) and a plain "local"."""
    identity = tmp_path / "id.txt"
    recipient = keygen(identity)
    settings = load_merged(
        {
            "archive": {"var_dir": str(tmp_path / "var"), "ingest_dir": str(tmp_path / "ingest")},
            "targets": [
                {
                    "name": "vault",
                    "kind": "filesystem",
                    "path": str(tmp_path / "vault"),
                    "encryption": "age",
                    "age_recipients": [recipient],
                    "custody": "third-party",
                },
                {"name": "local", "kind": "filesystem", "path": str(tmp_path / "local")},
            ],
        }
    )
    monkeypatch.setenv(settings.target("vault").identity_env_name(), str(identity))
    yield settings, identity


def _record(key: AipKey, aip_id: str, target: str, recipients: list[str], **kw: object) -> AipKeyRecord:
    blob = wrap(key, recipients)
    values: dict[str, object] = {
        "aip_id": aip_id,
        "target": target,
        "recipient": key.recipient,
        "wrapped": blob,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "recipients": tuple(recipients),
        "created_at": utcnow(),
        "verified_at": utcnow(),
    }
    values.update(kw)
    return AipKeyRecord(**values)  # type: ignore[arg-type]


# -- a key object against the catalog -----------------------------------------------------------------
def test_a_key_object_is_checked_against_the_catalog_and_put_back(vault: tuple[Settings, Path]) -> None:
    settings, _ = vault
    store = open_store(settings, settings.target("vault"))
    assert isinstance(store, EncryptedStore)
    src = settings.var_dir / "film.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(b"frames" * 1000)
    with remembering_keys():  # as an ingest does: only it makes keys
        store.put_file(
            f"{AIP}/data/objects/film.bin", src, sha256=hashlib.sha256(src.read_bytes()).hexdigest(), size=6000
        )
    rec = store.key_record(AIP)
    assert rec is not None
    on_disk = settings.target_path(settings.target("vault")) / AIP / "key.age"
    assert on_disk.read_bytes() == rec.wrapped

    assert keys.check_key_object(store, rec, AIP).ok
    on_disk.unlink()
    gone = keys.check_key_object(store, rec, AIP)
    assert (gone.problem, gone.failed) == ("missing", True) and "cannot be read from vault" in gone.detail
    assert keys.restore_key_object(store, rec)[0] and on_disk.read_bytes() == rec.wrapped
    on_disk.write_bytes(rec.wrapped[:-1] + bytes([rec.wrapped[-1] ^ 1]))
    hurt = keys.check_key_object(store, rec, AIP)
    assert hurt.problem == "checksum" and rec.sha256 in hurt.detail
    # a catalog copy that does not match its own digest is not written
    ok, why = keys.restore_key_object(store, dataclasses.replace(rec, wrapped=b"x" + rec.wrapped))
    assert not ok and "escrow" in why
    assert keys.restore_key_object(store, rec)[0]
    # no record: present is only a warning, absent is damage nobody can repair
    unrecorded = keys.check_key_object(store, None, AIP)
    assert unrecorded.problem == "unrecorded" and not unrecorded.failed
    assert keys.check_key_object(store, None, OTHER).problem == "missing"
    # a destroyed key must stay gone
    destroyed = dataclasses.replace(rec, wrapped=b"", destroyed_at=utcnow())
    assert keys.check_key_object(store, destroyed, AIP).problem == "not destroyed"
    on_disk.unlink()
    assert keys.check_key_object(store, destroyed, AIP).ok
    # something too large to be a key object where it belongs: damaged (not an error that stops
    # the audit), and put back from the catalog
    on_disk.write_bytes(b"\0" * (100 << 10))
    big = keys.check_key_object(store, rec, AIP)
    assert (big.problem, big.failed) == ("checksum", True) and "not a key object" in big.detail
    assert keys.check_key_object(store, None, AIP).problem == "checksum"
    assert keys.check_key_object(store, destroyed, AIP).problem == "not destroyed"
    assert keys.restore_key_object(store, rec)[0] and on_disk.read_bytes() == rec.wrapped
    store.close()


def test_rewrap_refuses_unknown_and_plaintext_targets(vault: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, _ = vault
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        who = Agent("someone", kind="person")
        with pytest.raises(ConfigError, match="no target named"):
            keys.rewrap(settings, catalog, target="nowhere", operator=who)
        with pytest.raises(ConfigError, match="not encrypted"):
            keys.rewrap(settings, catalog, target="local", operator=who)
        report = keys.rewrap(settings, catalog, operator=who)  # no keys recorded: nothing to do
        assert report.exit_code == 0 and report.results == [] and report.unchanged == {"vault": 0}


def test_rewrap_decides_on_recorded_recipients_and_rewraps_unknown_ones(
    vault: tuple[Settings, Path], tmp_path: Path
) -> None:
    """Recipients () in the catalog mean "not known" (a key object only opened, never made, by the
    store that recorded it): always re-wrapped to the configured ones, as a difference is."""
    settings, identity = vault
    extra = AipKey.generate()  # an age identity of its own: a recipient the config does not list
    a, b = settings.target("vault").age_recipients[0], extra.recipient
    assert not keys.needs_rewrap([a], [a]) and not keys.needs_rewrap([a, b], [b, a])
    assert keys.needs_rewrap([a], [a, b]) and keys.needs_rewrap([a, b], [a])
    assert keys.needs_rewrap([], [a]) and keys.needs_rewrap((), [a, b])

    key = AipKey.generate()
    blob = wrap(key, [a, b])  # wrapped to more than the config says, which the catalog does not know
    root = settings.target_path(settings.target("vault"))
    (root / AIP).mkdir(parents=True)
    (root / AIP / "key.age").write_bytes(blob)
    who = Agent("Ana", kind="person")
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        rec = _record(key, AIP, "vault", [a], wrapped=blob, sha256=hashlib.sha256(blob).hexdigest())
        catalog.record_key(dataclasses.replace(rec, recipients=()))
        # status and export take a key of unknown recipients as any other
        st = catalog.status(min_verified_replicas=0)
        assert {t.target: t.keys_unverified for t in st.targets}.get("vault", 0) == 0
        exported = keys.export(settings, catalog, tmp_path / "escrow")
        assert exported.exit_code == 0 and len(exported.written) == 1
        [entry] = json.loads((tmp_path / "escrow" / "keys.json").read_text())["keys"]
        assert entry["recipients"] is None  # not known, and not claimed to be []

        report = keys.rewrap(settings, catalog, operator=who)
        assert report.exit_code == 0, report.lines()
        [done] = report.results
        assert done.status == "rewrapped" and "were not recorded" in done.detail
        after = catalog.key_of(AIP, "vault")
        assert after is not None and after.recipients == (a,) and after.recipient == key.recipient
        assert (root / AIP / "key.age").read_bytes() == after.wrapped != blob
        # wrapped to the configured recipient only now: the one the config does not list no longer opens it
        other = tmp_path / "other.txt"
        other.write_text(f"{extra.identity}\n")

        def opens(with_identity: Path) -> bool:
            run = subprocess.run(
                ["age", "-d", "-i", str(with_identity), str(root / AIP / "key.age")], capture_output=True, text=True
            )
            return run.returncode == 0 and key.identity in run.stdout

        assert opens(identity) and not opens(other)
        (root / AIP / "key.age").write_bytes(blob)
        assert opens(other)  # (it did before)
        (root / AIP / "key.age").write_bytes(after.wrapped)
        # and the decision now says nothing is left to do
        assert keys.rewrap(settings, catalog, operator=who).results == []


# -- export ---------------------------------------------------------------------------------------------
def test_export_writes_private_files_age_opens(vault: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, identity = vault
    recipient = settings.target("vault").age_recipients[0]
    first, second = AipKey.generate(), AipKey.generate()
    dest = tmp_path / "escrow"
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        catalog.record_key(_record(first, AIP, "vault", [recipient]))
        catalog.record_key(_record(second, OTHER, "vault", [recipient]))
        report = keys.export(settings, catalog, dest)
        assert report.exit_code == 0 and len(report.written) == 2
        assert stat.S_IMODE(dest.stat().st_mode) == stat.S_IMODE((dest / "vault").stat().st_mode) == 0o700
        files = sorted((dest / "vault").iterdir())
        assert [p.name for p in files] == sorted([f"{AIP}.key.age", f"{OTHER}.key.age"])
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in [*files, dest / "README.txt"])
        # the stock age opens each with the target's identity: the AIP's key file inside
        opened = subprocess.run(
            ["age", "-d", "-i", str(identity), str(dest / "vault" / f"{AIP}.key.age")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert first.identity in opened and first.recipient in opened
        manifest = (dest / "manifest-sha256.txt").read_text().splitlines()
        assert manifest == [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  vault/{p.name}" for p in files]
        index = json.loads((dest / "keys.json").read_text())
        assert {e["aip_id"]: e["recipients"] for e in index["keys"]} == {AIP: [recipient], OTHER: [recipient]}
        assert all(e["custody"] == "third-party" for e in index["keys"])
        assert "age -d -i aip-key.txt" in (dest / "README.txt").read_text()

        # a key destroyed since: exporting again into the same folder deletes its file there
        catalog.destroy_key(OTHER, "vault", utcnow())
        again = keys.export(settings, catalog, dest)
        assert [p.name for p in again.removed] == [f"{OTHER}.key.age"]
        assert [p.name for p in (dest / "vault").iterdir()] == [f"{AIP}.key.age"]
        assert len((dest / "manifest-sha256.txt").read_text().splitlines()) == 1

        # a file of no recorded key at all goes too (it says so)
        rogue = dest / "vault" / "2e3f4051-3333-4c4c-8d8d-abcdefabcdef.key.age"
        rogue.write_bytes(b"not ours")
        again = keys.export(settings, catalog, dest)
        assert again.removed == again.unrecorded == [rogue] and not rogue.exists()
        assert any("no key of it is recorded" in line for line in again.lines())

        # anything else is refused, and nothing is written into it
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "thesis.odt").write_bytes(b"mine")
        with pytest.raises(ConfigError, match="not empty"):
            keys.export(settings, catalog, busy)
        assert [p.name for p in busy.iterdir()] == ["thesis.odt"]
        with pytest.raises(ConfigError, match="not a folder"):
            keys.export(settings, catalog, busy / "thesis.odt")


def test_export_again_keeps_the_file_of_a_key_it_cannot_export_now(
    vault: tuple[Settings, Path], tmp_path: Path
) -> None:
    """A key whose catalog copy is lost or damaged since an earlier export is not a destroyed key:
    its escrow file, maybe the last intact copy, stays with its index and manifest entries."""
    settings, _ = vault
    recipient = settings.target("vault").age_recipients[0]
    first, second = AipKey.generate(), AipKey.generate()
    dest = tmp_path / "escrow"
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        catalog.record_key(_record(first, AIP, "vault", [recipient]))
        catalog.record_key(_record(second, OTHER, "vault", [recipient]))
        assert keys.export(settings, catalog, dest).exit_code == 0
        path = dest / "vault" / f"{OTHER}.key.age"
        good = path.read_bytes()
        index_before = {e["file"]: e for e in json.loads((dest / "keys.json").read_text())["keys"]}

        for broken in (b"", b"x" + good):  # the catalog's copy emptied, then one not matching its SHA-256
            rec = catalog.key_of(OTHER, "vault")
            assert rec is not None and not rec.destroyed
            catalog.record_key(dataclasses.replace(rec, wrapped=broken))
            report = keys.export(settings, catalog, dest)
            assert report.exit_code == 1 and report.removed == [] and report.kept == [path]
            [error] = report.errors
            assert OTHER in error and "not exported" in error and "earlier export's file of it is kept" in error
            assert not any("removed" in line for line in report.lines())
            assert path.read_bytes() == good  # the escrow copy survives, byte for byte
            index = {e["file"]: e for e in json.loads((dest / "keys.json").read_text())["keys"]}
            assert index == index_before  # still listed, as the earlier export listed it
            check = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=dest, capture_output=True, text=True)
            assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout

        # once it is destroyed, though, the file goes
        catalog.destroy_key(OTHER, "vault", utcnow())
        report = keys.export(settings, catalog, dest)
        assert report.exit_code == 0 and report.removed == [path] and not path.exists()


# -- status -----------------------------------------------------------------------------------------------
def test_status_counts_aips_without_a_verified_key_object(vault: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, _ = vault
    key = AipKey.generate()
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        catalog.record_aip(_sealed())  # its "local" replica is encrypted (opaque keys, ciphertext digests)

        def local() -> tuple[int, int, bool]:
            st = catalog.status(audit_interval_days=30, min_verified_replicas=0)
            t = {r.target: r for r in st.targets}
            assert t["s3"].encrypted_objects == t["s3"].keys_unverified == 0
            return t["local"].encrypted_objects, t["local"].keys_unverified, st.needs_attention

        assert local() == (3, 1, True)  # no key recorded at all
        catalog.record_key(_record(key, AIP, "local", [key.recipient]))
        assert local() == (3, 0, False)
        catalog.mark_key_verified(AIP, "local", utcnow() - dt.timedelta(days=40))
        assert local() == (3, 1, True)  # not found intact within the audit interval
        catalog.mark_key_verified(AIP, "local", utcnow())
        assert local() == (3, 0, False)

        # the config's part: whether a target encrypts, and who keeps it
        renamed = load_merged(
            {
                "archive": {"var_dir": str(tmp_path / "var")},
                "targets": [
                    {**settings.target("vault").model_dump(mode="json"), "name": "local"},
                    {"name": "s3", "kind": "filesystem", "path": str(tmp_path / "s3")},
                ],
            }
        )
        st = with_targets(catalog.status(min_verified_replicas=0), renamed.targets)
        t = {r.target: r for r in st.targets}
        assert (t["local"].encrypted, t["local"].custody) == (True, "third-party")
        assert (t["s3"].encrypted, t["s3"].custody) == (False, "archive")


def test_status_table_shows_encryption_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from preserve.cli.output import print_status

    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        catalog.record_aip(_sealed())
        st = catalog.status(min_verified_replicas=0)
    print_status(st, alerts_off=True)
    out = capsys.readouterr().out
    table = out[out.index("copies per target") :]
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in table.splitlines() if line.startswith("│")]
    rows = {c[0]: c[1:] for c in cells}
    assert rows["local"] == ["-", "encrypted", "1"]  # no key recorded for the AIP there
    assert rows["s3"] == ["-", "plaintext", "-"]


# -- the command line ---------------------------------------------------------------------------------------
def test_cli_arguments() -> None:
    p = build_parser()
    args = p.parse_args(["keys", "rewrap", "--target", "vault", "--operator", "Ana"])
    assert (args.command, args.action, args.target, args.operator) == ("keys", "rewrap", "vault", "Ana")
    assert args.func.__name__ == "cmd_rewrap"
    args = p.parse_args(["--operator", "Bo", "keys", "rewrap"])
    assert args.operator == "Bo" and args.target is None
    args = p.parse_args(["keys", "export", "/tmp/escrow"])
    assert args.dest == "/tmp/escrow" and args.func.__name__ == "cmd_export"
    assert p.parse_args(["audit", "--decrypt"]).decrypt and not p.parse_args(["audit"]).decrypt
