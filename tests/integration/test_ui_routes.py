"""The operator page's routes on a real server: its static files are open (and only
they), every file it loads is served from this origin, ``GET /v1/auth/scopes`` tells
the page what the presented token may do, ``GET /v1/ui/settings`` is scoped."""

from __future__ import annotations

import re
from pathlib import Path

from service.api.app import create_app
from service.auth.tokens import Scope, TokenEntry, hash_token, new_token
from service.config import Settings, load_settings
from service.registry import Registry
from service.ui.routes import ASSETS, STATIC
from tests.support.http import HTTP
from tests.support.servers import serve_app

LABEL = new_token()
READ = new_token()
TOKENS = [
    TokenEntry(name="labeller", sha256=hash_token(LABEL), scopes=(Scope.LABEL,)),
    TokenEntry(name="reader", sha256=hash_token(READ), scopes=(Scope.READ, Scope.LABEL)),
]
GRAFANA = "https://grafana.example/d/abc/lineinspect"


def _settings(reg: Registry, tmp: Path, **kw: object) -> Settings:
    return load_settings(
        None, registry_root=reg.root, models=["tiny"], warmup_runs=1, data_root=tmp / "d", **kw
    )


def test_every_file_the_page_loads_is_committed_and_local() -> None:
    refs = set(re.findall(r'(?:href|src)="ui/([^"]+)"', (STATIC / "index.html").read_text()))
    for js in STATIC.glob("*.js"):
        refs |= set(re.findall(r'from "\./([^"]+)"', js.read_text()))
    assert refs and refs <= set(ASSETS), refs - set(ASSETS)
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href|import|url)\W+(https?:)?//", text), path.name


def test_page_and_scopes_without_tokens(tiny_registry: Registry, tmp_path: Path) -> None:
    app = create_app(_settings(tiny_registry, tmp_path, grafana_url=GRAFANA))
    with serve_app(app) as url:
        page = HTTP.get(f"{url}/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        js = HTTP.get(f"{url}/ui/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert HTTP.get(f"{url}/ui/missing.js").status_code == 404
        assert HTTP.get(f"{url}/ui/..%2Fconfig.py").status_code == 404
        slash = HTTP.get(f"{url}/ui/", follow_redirects=False)
        assert slash.status_code == 308 and slash.headers["location"].endswith("/ui")
        scopes = HTTP.get(f"{url}/v1/auth/scopes").json()
        assert scopes == {"enabled": False, "token": None, "scopes": [s.value for s in Scope]}
        assert HTTP.get(f"{url}/v1/ui/settings").json() == {"grafana_url": GRAFANA}


def test_page_is_open_and_scopes_follow_the_token(tiny_registry: Registry, tmp_path: Path) -> None:
    app = create_app(_settings(tiny_registry, tmp_path, tokens=TOKENS))
    with serve_app(app) as url:
        assert HTTP.get(f"{url}/ui").status_code == 200
        assert HTTP.get(f"{url}/ui/ui.css").status_code == 200
        anonymous = HTTP.get(f"{url}/v1/auth/scopes").json()
        assert anonymous == {"enabled": True, "token": None, "scopes": []}
        bad = HTTP.get(f"{url}/v1/auth/scopes", headers={"Authorization": "Bearer li_nope"})
        assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
        mine = HTTP.get(f"{url}/v1/auth/scopes", headers={"Authorization": f"Bearer {LABEL}"})
        assert mine.json() == {"enabled": True, "token": "labeller", "scopes": ["label"]}
        settings = f"{url}/v1/ui/settings"
        assert HTTP.get(settings, headers={"Authorization": f"Bearer {LABEL}"}).status_code == 403
        r = HTTP.get(settings, headers={"Authorization": f"Bearer {READ}"})
        assert r.status_code == 200 and r.json() == {"grafana_url": None}
