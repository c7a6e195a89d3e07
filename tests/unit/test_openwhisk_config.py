"""Credential discovery, the way ``wsk`` does it, and the AUTH key kept out of outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_hpc.openwhisk.config import (
    Credentials,
    CredentialsError,
    load_credentials,
    normalize_apihost,
)

AUTH = "11111111-2222-3333-4444-555555555555:file-secret-value"


def _props(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def test_wskprops_in_home_is_read(tmp_path: Path) -> None:
    # GIVEN ~/.wskprops with host, key and namespace, and no overrides
    _props(tmp_path / ".wskprops", APIHOST="ow.example:443", AUTH=AUTH, NAMESPACE="team")
    # WHEN credentials are loaded
    creds = load_credentials({"HOME": str(tmp_path)})
    # THEN they come from the file, and a host without scheme means https
    assert (creds.apihost, creds.auth, creds.namespace) == ("ow.example:443", AUTH, "team")
    assert creds.base_url == "https://ow.example:443/api/v1"
    assert creds.basic_auth() == tuple(AUTH.split(":"))


def test_wsk_config_file_takes_precedence_over_home(tmp_path: Path) -> None:
    # GIVEN both ~/.wskprops and a file named by WSK_CONFIG_FILE
    _props(tmp_path / ".wskprops", APIHOST="home.example", AUTH=AUTH)
    other = _props(tmp_path / "other.props", APIHOST="other.example", AUTH=AUTH)
    # WHEN credentials are loaded
    creds = load_credentials({"HOME": str(tmp_path), "WSK_CONFIG_FILE": str(other)})
    # THEN WSK_CONFIG_FILE wins
    assert creds.apihost == "other.example"


def test_environment_overrides_the_file_whisk_over_ow(tmp_path: Path) -> None:
    # GIVEN a file, __OW_* variables and WHISK_* variables
    _props(tmp_path / ".wskprops", APIHOST="file.example", AUTH=AUTH, NAMESPACE="filens")
    env = {
        "HOME": str(tmp_path),
        "__OW_API_HOST": "ow.example",
        "__OW_API_KEY": "ow:key",
        "__OW_NAMESPACE": "owns",
        "WHISK_APIHOST": "whisk.example",
    }
    # WHEN credentials are loaded
    creds = load_credentials(env)
    # THEN WHISK_* beats __OW_*, which beats the file
    assert (creds.apihost, creds.auth, creds.namespace) == ("whisk.example", "ow:key", "owns")


def test_explicit_arguments_override_everything(tmp_path: Path) -> None:
    # GIVEN a WHISK_APIHOST in the environment
    env = {"HOME": str(tmp_path), "WHISK_APIHOST": "env.example", "WHISK_AUTH": AUTH}
    # WHEN an explicit apihost (the CLI flag) is given
    creds = load_credentials(env, apihost="http://flag.example:3233")
    # THEN the flag wins, and an explicit http scheme is kept
    assert creds.base_url == "http://flag.example:3233/api/v1"


def test_malformed_line_names_the_line_not_its_content(tmp_path: Path) -> None:
    # GIVEN a properties file whose second line is the bare key (no KEY=)
    path = tmp_path / "bad.props"
    path.write_text(f"APIHOST=ow.example\n{AUTH}\n")
    # WHEN credentials are loaded
    with pytest.raises(CredentialsError) as err:
        load_credentials({"WSK_CONFIG_FILE": str(path)})
    # THEN the error points at line 2 and does not echo the secret
    assert f"{path}:2" in str(err.value)
    assert "file-secret-value" not in str(err.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"AUTH": AUTH}, "no OpenWhisk APIHOST"),
        ({"APIHOST": "ow.example"}, "no OpenWhisk AUTH"),
        ({"APIHOST": "ow.example", "AUTH": "no-colon-secret"}, "<uuid>:<key>"),
        ({"APIHOST": "ftp://ow.example", "AUTH": AUTH}, r"not a host or an http\(s\) URL"),
    ],
)
def test_missing_or_malformed_values_are_rejected(
    tmp_path: Path, values: dict[str, str], expected: str
) -> None:
    # GIVEN a properties file lacking a value or holding a malformed one
    path = _props(tmp_path / "p", **values)
    # WHEN credentials are loaded THEN the error says which value, never the secret
    with pytest.raises(CredentialsError, match=expected) as err:
        load_credentials({"WSK_CONFIG_FILE": str(path)})
    assert "secret" not in str(err.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    # GIVEN WSK_CONFIG_FILE naming a missing file WHEN loading THEN the error names it
    with pytest.raises(CredentialsError, match="does not exist"):
        load_credentials({"WSK_CONFIG_FILE": str(tmp_path / "missing")})


def test_no_file_and_no_env_is_a_clear_error(tmp_path: Path) -> None:
    # GIVEN an empty HOME WHEN loading THEN the message says where to configure APIHOST
    with pytest.raises(CredentialsError, match=r"\.wskprops"):
        load_credentials({"HOME": str(tmp_path)})


def test_insecure_comes_from_argument_or_environment(tmp_path: Path) -> None:
    # GIVEN credentials in the environment
    env = {"HOME": str(tmp_path), "WHISK_APIHOST": "h", "WHISK_AUTH": AUTH}
    # WHEN insecure is given by argument or SHPC_OW_INSECURE THEN it is honoured
    assert load_credentials(env).insecure is False
    assert load_credentials({**env, "SHPC_OW_INSECURE": "true"}).insecure is True
    assert load_credentials({**env, "SHPC_OW_INSECURE": "true"}, insecure=False).insecure is False


def test_repr_and_str_mask_the_auth_key() -> None:
    # GIVEN credentials WHEN they are formatted THEN the key is masked
    creds = Credentials(apihost="h", auth=AUTH)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "file-secret-value" not in text
        assert "11111111-2222" not in text
        assert "auth=***" in text


def test_normalize_apihost_strips_trailing_slash() -> None:
    # GIVEN hosts in several spellings WHEN normalized THEN one canonical URL results
    assert normalize_apihost("ow.example/") == "https://ow.example"
    assert normalize_apihost(" https://ow.example:31001 ") == "https://ow.example:31001"
