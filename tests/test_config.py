"""Configuration: base URL forms, numbers, flags over the environment, masked reprs."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from aitoearn_mcp import Config, ConfigError
from aitoearn_mcp._config import HttpSettings, normalize_base_url, with_overrides


@pytest.mark.parametrize(
    ("pasted", "root"),
    [
        ("https://aitoearn.ai", "https://aitoearn.ai"),
        ("https://aitoearn.ai/", "https://aitoearn.ai"),
        ("https://aitoearn.cn", "https://aitoearn.cn"),
        ("https://aitoearn.ai/api/ai", "https://aitoearn.ai"),
        ("https://aitoearn.ai/api/ai/", "https://aitoearn.ai"),
        ("https://aitoearn.ai/api/ai/v1", "https://aitoearn.ai"),
        ("  http://127.0.0.1:8080/prefix/api/ai/ ", "http://127.0.0.1:8080/prefix"),
    ],
)
def test_base_url_forms(pasted: str, root: str) -> None:
    assert normalize_base_url(pasted) == root


@pytest.mark.parametrize("bad", ["ftp://aitoearn.ai", "aitoearn.ai", "https://", "https://aitoearn.ai/?x=1", ""])
def test_bad_base_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="AITOEARN_BASE_URL"):
        normalize_base_url(bad)


def test_environment_and_defaults() -> None:
    config = Config.from_env({})
    assert (config.base_url, config.api_key, config.max_retries, config.connect_timeout, config.read_timeout,
            config.deadline, config.models_cache_ttl) == ("https://aitoearn.ai", None, 2, 10.0, 120.0, 1800.0, 300.0)  # fmt: skip
    assert config.wait_seconds is None  # by host, unless AITOEARN_WAIT_SECONDS says otherwise
    env = {"AITOEARN_API_KEY": " sk-1 ", "AITOEARN_BASE_URL": "https://aitoearn.cn/api/ai", "AITOEARN_MAX_RETRIES": "0",
           "AITOEARN_CONNECT_TIMEOUT": "2.5", "AITOEARN_READ_TIMEOUT": "30", "AITOEARN_DEADLINE": "600",
           "AITOEARN_MODELS_CACHE_TTL": "0", "AITOEARN_WAIT_SECONDS": "20"}  # fmt: skip
    config = Config.from_env(env)
    assert config.wait_seconds == 20.0
    assert Config.from_env({"AITOEARN_DEADLINE": "0"}).deadline is None  # 0: no deadline at all
    assert Config.from_env(config.to_env()).deadline == 600.0
    assert config.api_key is not None and config.api_key.get_secret_value() == "sk-1"
    assert (config.base_url, config.site, config.max_retries, config.connect_timeout, config.read_timeout,
            config.deadline, config.models_cache_ttl) == ("https://aitoearn.cn", "aitoearn.cn", 0, 2.5, 30.0, 600.0, 0.0)  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AITOEARN_MAX_RETRIES": "two"}, "AITOEARN_MAX_RETRIES must be a whole number"),
        ({"AITOEARN_MAX_RETRIES": "-1"}, "must be zero or more"),
        ({"AITOEARN_READ_TIMEOUT": "0"}, "read timeout must be more than zero"),
        ({"AITOEARN_CONNECT_TIMEOUT": "nan"}, "AITOEARN_CONNECT_TIMEOUT must be zero or more"),
    ],
)
def test_bad_numbers_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_flags_override_the_environment_and_the_key_never_shows() -> None:
    config = with_overrides(Config.from_env({"AITOEARN_API_KEY": "sk-secret-value"}), base_url="https://aitoearn.cn/",
                            max_retries=None, read_timeout=5.0)  # fmt: skip
    assert config.base_url == "https://aitoearn.cn" and config.max_retries == 2 and config.read_timeout == 5.0
    assert "sk-secret-value" not in repr(config) + str(config) + str(config.to_env())
    assert config.api_key == SecretStr("sk-secret-value")


def test_http_settings() -> None:
    assert HttpSettings().loopback
    assert not HttpSettings(host="10.0.0.5").loopback
    with pytest.raises(ConfigError, match="needs --allowed-host"):
        HttpSettings(host="0.0.0.0")
    with pytest.raises(ConfigError, match="must start with '/'"):
        HttpSettings(path="mcp")
    settings = HttpSettings.from_env({"AITOEARN_HTTP_HOST": "0.0.0.0", "AITOEARN_HTTP_ALLOWED_HOSTS": "a.example, b.example",
                                      "AITOEARN_HTTP_PORT": "9000", "AITOEARN_HTTP_WORKERS": "3"})  # fmt: skip
    assert settings.allowed_hosts == ("a.example", "b.example") and settings.port == 9000 and settings.workers == 3
    assert HttpSettings.from_env(settings.to_env()) == settings
