"""Loading the settings: the TOML file, then PRESERVE__SECTION__KEY variables of the environment
mapping passed in (never os.environ), then explicit overrides; errors name the offending key.
Also the access policy's locations and the embedded server's keys, which live outside config."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.access import policy
from preserve.config import DEFAULT_CONFIG, Settings, load
from preserve.core.errors import ConfigError
from preserve.storage.credentials import embedded_credentials


def test_file_then_environment_then_overrides() -> None:
    assert load(DEFAULT_CONFIG, env={}).ingest.stable_seconds == 30
    env = {
        "PRESERVE__INGEST__STABLE_SECONDS": "5",
        "PRESERVE__INGEST__DECODE_CHECK": "false",
        "PRESERVE__SERVICES__BUCKETS": '["a-bucket", "b-bucket"]',
        "PRESERVE__ACCESS_TARGET__PREFIX": "public",
        "PRESERVE_SEAWEED_ACCESS_KEY_ID": "not a setting",
    }
    s = load(DEFAULT_CONFIG, env=env)
    assert (s.ingest.stable_seconds, s.ingest.decode_check, s.services.buckets) == (5, False, ["a-bucket", "b-bucket"])
    assert s.ingest.poll_seconds == 10  # the rest of [ingest] still from the file
    assert s.access_target is not None and (s.access_target.prefix, s.access_target.bucket) == (
        "public",
        "preserve-access",
    )
    over = load(DEFAULT_CONFIG, env=env, overrides={"ingest": {"stable_seconds": 7}})
    assert over.ingest.stable_seconds == 7 and over.ingest.decode_check is False
    assert type(s) is Settings and s.source == DEFAULT_CONFIG.resolve()


def test_only_the_given_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESERVE__INGEST__POLL_SECONDS", "99")
    monkeypatch.setenv("PRESERVE__ARCHVE__VAR_DIR", "/nowhere")
    assert load(DEFAULT_CONFIG, env={}).ingest.poll_seconds == 10


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PRESERVE__ARCHIVE__CATALOG_UR": "sqlite://"}, "archive.catalog_ur"),  # a mistyped key
        ({"PRESERVE__ARCHVE__VAR_DIR": "/x"}, "archve"),  # a mistyped section
        ({"PRESERVE__INGEST__STABLE_SECONDS": "soon"}, "ingest.stable_seconds"),
        ({"PRESERVE__SERVICES__BUCKETS": "a,b"}, "PRESERVE__SERVICES__BUCKETS"),  # a list must be JSON
    ],
)
def test_a_bad_value_is_named(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load(DEFAULT_CONFIG, env=env)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "none.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[archive\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(broken, env={})
    assert load(None, env={"PRESERVE_CONFIG": str(DEFAULT_CONFIG)}).source == DEFAULT_CONFIG.resolve()


def test_filesystem_access_target_gets_sibling_directories(tmp_path: Path) -> None:
    access = {"name": "pub", "kind": "filesystem", "path": str(tmp_path / "access")}
    s = load(DEFAULT_CONFIG, env={}, overrides={"access_target": access})
    held = policy.access_location(s, "embargoed")
    assert held is not None and held.name == "pub-embargoed" and held.path == tmp_path / "access-embargoed"
    assert [t.name for t in policy.access_locations(s)] == ["pub", "pub-restricted", "pub-embargoed"]
    with pytest.raises(ConfigError, match="no storage target named 'pub-dark'"):
        policy.target(s, "pub-dark")
    assert s.target("pub") == s.access_target  # configured targets; the derived ones are policy's


def test_staging_is_in_place_unless_copy_is_chosen() -> None:
    assert load(DEFAULT_CONFIG, env={}).ingest.staging == "in-place"
    assert load(DEFAULT_CONFIG, env={"PRESERVE__INGEST__STAGING": "copy"}).ingest.staging == "copy"
    with pytest.raises(ConfigError, match="ingest.staging"):
        load(DEFAULT_CONFIG, env={"PRESERVE__INGEST__STAGING": "elsewhere"})


def test_embedded_keys_before_services_up(tmp_path: Path) -> None:
    s = load(DEFAULT_CONFIG, env={}, overrides={"archive": {"var_dir": str(tmp_path)}})
    with pytest.raises(ConfigError) as caught:
        embedded_credentials(s)
    assert "preserve services up" in caught.value.advice


# -- encrypted targets and custody (issue 16) --------------------------------------------------------
def _recipient() -> str:
    from pyrage import x25519

    return str(x25519.Identity.generate().to_public())


def _target(tmp_path: Path, **values: object) -> dict[str, object]:
    return {"name": "vault", "kind": "filesystem", "path": str(tmp_path / "vault"), **values}


def _targets(tmp_path: Path, **values: object) -> list[dict[str, object]]:
    """The target under test and a plain second one (the default config asks for two replicas)."""
    return [_target(tmp_path, **values), {"name": "home", "kind": "filesystem", "path": str(tmp_path / "home")}]


def test_an_encrypted_target_needs_well_formed_recipients(tmp_path: Path) -> None:
    good = _recipient()
    s = load(DEFAULT_CONFIG, env={}, overrides={"targets": _targets(tmp_path, encryption="age", age_recipients=[good])})
    vault = s.target("vault")
    assert vault.encrypted and vault.age_recipients == [good]
    assert vault.identity_env_name() == "PRESERVE_VAULT_AGE_IDENTITY"
    for bad, says in [
        ([], "needs age_recipients"),
        ([good[:-1] + ("q" if good[-1] != "q" else "p")], r"age_recipients\[0\] is not an age X25519 public key"),
        ([good, "ssh-ed25519 AAAA"], r"age_recipients\[1\]"),
        ([good, good], "lists a key twice"),
    ]:
        with pytest.raises(ConfigError, match=says):
            load(
                DEFAULT_CONFIG, env={}, overrides={"targets": _targets(tmp_path, encryption="age", age_recipients=bad)}
            )
    with pytest.raises(ConfigError, match="encryption is not"):
        load(DEFAULT_CONFIG, env={}, overrides={"targets": _targets(tmp_path, age_recipients=[good])})


def test_a_third_party_target_must_be_encrypted_unless_plaintext_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='custody = "third-party"'):
        load(DEFAULT_CONFIG, env={}, overrides={"targets": _targets(tmp_path, custody="third-party")})
    allowed = load(
        DEFAULT_CONFIG, env={}, overrides={"targets": _targets(tmp_path, custody="third-party", allow_plaintext=True)}
    )
    assert not allowed.target("vault").encrypted
    sealed = load(
        DEFAULT_CONFIG,
        env={},
        overrides={
            "targets": _targets(tmp_path, custody="third-party", encryption="age", age_recipients=[_recipient()])
        },
    )
    assert sealed.target("vault").encrypted
    # the default config's own targets are the archive's, in plaintext
    assert all(t.custody == "archive" and not t.encrypted for t in load(DEFAULT_CONFIG, env={}).targets)


def test_access_copies_are_never_encrypted(tmp_path: Path) -> None:
    access = {**_target(tmp_path, encryption="age", age_recipients=[_recipient()]), "name": "pub"}
    with pytest.raises(ConfigError, match="access copies are for viewers"):
        load(DEFAULT_CONFIG, env={}, overrides={"access_target": access})


def test_a_malformed_recipient_is_a_config_error_at_the_command_line(tmp_path: Path) -> None:
    import tomllib

    from preserve.cli.main import main

    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert tomllib.loads(text)  # the default config parses; the broken one differs by one target
    broken = tmp_path / "preserve.toml"
    broken.write_text(
        text
        + '\n[[targets]]\nname = "cloud"\nkind = "filesystem"\npath = "/tmp/x"\nencryption = "age"\n'
        + 'age_recipients = ["age1notakey"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(broken), "status"]) == 2
