"""Token verification: 401 for no or a bad token, 403 for a missing scope, open when
no token is configured; settings reject the unsupported admin_token."""

from __future__ import annotations

import pytest

from service.auth.tokens import Scope, TokenEntry, TokenVerifier, bearer, hash_token, new_token
from service.config import ConfigError, load_settings
from service.errors import Forbidden, Unauthorized

TOKEN = new_token()
VERIFIER = TokenVerifier([TokenEntry(name="plc", sha256=hash_token(TOKEN), scopes=(Scope.INFER,))])


def test_bearer_parsing() -> None:
    assert bearer(f"Bearer {TOKEN}") == TOKEN and bearer(f"bearer  {TOKEN} ") == TOKEN
    for bad in (None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", TOKEN):
        assert bearer(bad) is None


def test_a_token_grants_exactly_its_scopes() -> None:
    entry = VERIFIER.authorize(f"Bearer {TOKEN}", Scope.INFER)
    assert entry is not None and entry.name == "plc"
    with pytest.raises(Forbidden, match="'read' scope"):
        VERIFIER.authorize(f"Bearer {TOKEN}", Scope.READ)


@pytest.mark.parametrize("header", [None, "Bearer li_wrong", f"Bearer {TOKEN}x", TOKEN])
def test_no_or_an_invalid_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        VERIFIER.authorize(header, Scope.INFER)


def test_open_routes_and_no_tokens_need_nothing() -> None:
    assert VERIFIER.authorize(None, None) is None
    assert not TokenVerifier([]).enabled
    assert TokenVerifier([]).authorize(None, Scope.ADMIN) is None


def test_settings_hold_hashes_with_scopes_and_reject_admin_token() -> None:
    entry = {"name": "plc", "sha256": hash_token(TOKEN), "scopes": ["infer", "read"]}
    s = load_settings(None, tokens=[entry])
    assert s.tokens[0].scopes == (Scope.INFER, Scope.READ)
    with pytest.raises(ConfigError, match="sha256"):
        load_settings(None, tokens=[{**entry, "sha256": TOKEN}])  # the token, not its hash
    with pytest.raises(ConfigError, match="scopes"):
        load_settings(None, tokens=[{**entry, "scopes": ["everything"]}])
    with pytest.raises(ConfigError, match="lineinspect token new"):
        load_settings(None, admin_token="s3cret")
