"""The console's aiohttp application: its pages (lampi.console.views), its admin pages
(lampi.console.admin) and its static files."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lampi.config import Settings
from lampi.console import admin, segments, session
from lampi.console import views as V
from lampi.console.upstream import Upstream
from lampi.core.identity import IdentityService
from lampi.core.storage import Storage


def build_console_app(settings: Settings, identity: IdentityService, storage: Storage,
                      middlewares: tuple[Any, ...] = ()) -> web.Application:
    """The console as an aiohttp application; the gateway serves it on ``console_port``
    (further routes, e.g. ``/metrics``, may be added to it before it starts)."""
    app = web.Application(middlewares=[*middlewares, V.headers_middleware], client_max_size=1024 * 1024)
    app[V.CONF] = settings
    app[V.IDENT] = identity
    app[V.STORE] = storage
    app[V.KEY] = session.load_key(settings.data_path / "keys" / "console-key")
    app[V.ENV] = V.Templates()
    app[V.UPSTREAM] = Upstream(settings)

    async def on_startup(app: web.Application) -> None:
        await app[V.UPSTREAM].start()

    async def on_cleanup(app: web.Application) -> None:
        await app[V.UPSTREAM].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    r = app.router
    r.add_get("/", V.root)
    r.add_get("/login", V.login_page)
    r.add_post("/login", V.login)
    r.add_get("/projects", V.projects_page)
    r.add_post("/projects", V.choose_project)
    r.add_post("/logout", V.logout)
    r.add_get("/buckets", V.buckets)
    r.add_post("/buckets", V.create_bucket)
    r.add_get("/bucket", V.bucket)
    r.add_post("/bucket/upload", V.upload)
    r.add_post("/bucket/delete-objects", V.delete_objects)
    r.add_post("/bucket/delete", V.delete_bucket)
    r.add_post("/bucket/share", V.share)
    r.add_post("/bucket/copy", V.copy_bucket)
    r.add_post("/bucket/public", V.publish)
    r.add_get("/bucket/tags", V.bucket_tags)
    r.add_post("/bucket/tags", V.edit_bucket_tags)
    r.add_get("/object", V.object_page)
    r.add_get("/raw", V.raw)
    r.add_post("/object/meta", V.edit_meta)
    r.add_post("/object/tempurl", V.temp_url)
    r.add_get("/keys", V.keys)
    r.add_post("/keys", V.create_key)
    r.add_post("/keys/delete", V.delete_key)
    r.add_get("/usage", V.usage)
    admin.add_routes(r)
    segments.add_routes(r)
    r.add_static("/static", V.HERE / "static", append_version=False)
    return app
