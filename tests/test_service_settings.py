"""Service settings from METAREC_* variables: development defaults, production refuses public keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from metarec.cli import main
from service.settings import DEV_ADMIN_KEY, DEV_USER_KEY, Settings


def test_development_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("METAREC_DATA_ROOT", str(tmp_path))
    s = Settings()
    assert s.env == "development" and s.api_key == DEV_USER_KEY and s.admin_api_key == DEV_ADMIN_KEY
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / 'metarec.sqlite'}"
    assert s.resolved_portfolio_dir().name == "demo"


@pytest.mark.parametrize("user,admin", [(DEV_USER_KEY, "a" * 20), ("u" * 20, DEV_ADMIN_KEY), ("short", "a" * 20)])
def test_production_refuses_development_or_weak_keys(monkeypatch, user, admin):
    monkeypatch.setenv("METAREC_ENV", "production")
    monkeypatch.setenv("METAREC_API_KEY", user)
    monkeypatch.setenv("METAREC_ADMIN_API_KEY", admin)
    with pytest.raises(ValidationError, match="production"):
        Settings()


def test_keys_must_differ_and_devices_parse(monkeypatch):
    monkeypatch.setenv("METAREC_API_KEY", "same-key-same-key")
    monkeypatch.setenv("METAREC_ADMIN_API_KEY", "same-key-same-key")
    with pytest.raises(ValidationError, match="must differ"):
        Settings()
    monkeypatch.delenv("METAREC_ADMIN_API_KEY")
    monkeypatch.setenv("METAREC_DEVICES", "cpu, cuda:0,cuda:1")
    assert Settings().devices == ["cpu", "cuda:0", "cuda:1"]
    monkeypatch.setenv("METAREC_DEVICES", '["cuda:2"]')
    assert Settings().devices == ["cuda:2"]


def test_serve_with_bad_settings_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setenv("METAREC_ENV", "production")
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("metarec: error: ") and "METAREC_API_KEY" in err and err.count("\n") == 1
    monkeypatch.setenv("METAREC_ENV", "staging")
    assert main(["worker", "--once"]) == 2
    assert "env" in capsys.readouterr().err
