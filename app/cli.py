"""The `jobgraph` command: serve, migrate, token create, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import warnings
from datetime import timedelta
from pathlib import Path

from app.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _parse_duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        return timedelta(seconds=int(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and a unit, e.g. 30d, 12h, 90m") from None


def cmd_serve(args: argparse.Namespace) -> int:
    # Settings first, then the configuration check, each before the heavier imports: a
    # bad setting is refused without loading the whole application first.
    settings = _settings(args)
    from app.logging import configure
    from app.web.bootstrap import ConfigurationError, check_configuration
    from app.web.datadir import DataDirBusy, DataDirLock

    configure(settings.log_level)
    try:
        check_configuration(settings)
        # Fail fast with a clear message (the server takes the lock for good on start-up).
        probe = DataDirLock(settings.data_dir)
        probe.acquire()
        probe.release()
    except (ConfigurationError, DataDirBusy) as error:
        print(f"jobgraph: {error}", file=sys.stderr)
        return 2
    import uvicorn

    from app.web.app import create_app

    # uvicorn deprecates its `websockets` implementation for websockets-sansio, which
    # fanned changes out about half as fast here (bench/README.md); kept while it exists.
    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    if args.workers > 1:
        return _serve_workers(settings, args.workers)
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            proxy_headers=True,
            # Measured: this implementation fans one change out to 1,000 subscribers
            # about twice as fast as websockets-sansio (bench/README.md, "Subscriptions").
            ws="websockets",
            ws_max_size=settings.max_request_body_bytes,
        )
    except DataDirBusy as exc:
        print(f"jobgraph: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_workers(settings: Settings, workers: int) -> int:
    """N worker processes on one port (uvicorn's multiprocess mode), each a full replica:
    only where nothing is bound to one process, i.e. PostgreSQL (changes reach every
    worker through LISTEN/NOTIFY) and Kubernetes pools only (a local runtime supervises
    the processes of its one server)."""
    import uvicorn

    from app.core.pools import PoolCatalog
    from app.core.terminal_tickets import load_secret
    from app.store.migrate import upgrade

    local = [p.id for p in PoolCatalog.load(settings.pools_file) if p.runtime == "local"]
    if not settings.database_url_resolved.startswith("postgresql") or local:
        print(
            "jobgraph: --workers needs PostgreSQL (JOBGRAPH_DATABASE_URL) and only kubernetes "
            f"pools{' (local pools: ' + ', '.join(local) + ')' if local else ''}; "
            "otherwise run one process",
            file=sys.stderr,
        )
        return 2
    # What must happen once happens here, before the workers start: the schema, the
    # terminal-credential key, the first admin token.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        upgrade(settings.database_url_resolved)
    load_secret(data_dir=settings.data_dir, configured=settings.secret_key)
    from app.web.app import print_first_admin_token

    secret = asyncio.run(_with_tokens(settings, lambda tokens: tokens.ensure_first_admin()))
    if secret:
        print_first_admin_token(secret)
    # The workers build their settings from the environment (the app factory).
    os.environ.update(
        JOBGRAPH_HOST=settings.host, JOBGRAPH_PORT=str(settings.port),
        JOBGRAPH_DATA_DIR=str(settings.data_dir), JOBGRAPH_AUTO_MIGRATE="false",
    )
    uvicorn.run(
        "app.web.app:create_app", factory=True, workers=workers,
        host=settings.host, port=settings.port, log_level=settings.log_level,
        proxy_headers=True, ws="websockets", ws_max_size=settings.max_request_body_bytes,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.store.migrate import upgrade

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url_resolved)
    print(f"database is up to date ({settings.database_url_resolved.split('@')[-1]})")
    return 0


async def _with_tokens(settings: Settings, action):
    from app.core.tokens import TokenService
    from app.store.db import Database
    from app.store.migrate import upgrade_if_behind

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url_resolved)
    try:
        await upgrade_if_behind(db)
        return await action(TokenService(db))
    finally:
        await db.dispose()


def cmd_token_create(args: argparse.Namespace) -> int:
    from app.domain.errors import ValidationFailed
    from app.domain.jobs import utcnow

    expires_at = utcnow() + args.expires if args.expires else None

    async def create(tokens):
        return await tokens.create(
            user=args.user, is_admin=args.admin, groups=tuple(args.group or ()), expires_at=expires_at
        )

    try:
        _, secret = asyncio.run(_with_tokens(_settings(args), create))
    except ValidationFailed as exc:
        print(f"jobgraph: {exc.message}", file=sys.stderr)
        return 2
    print(secret)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    async def list_tokens(tokens):
        return await tokens.list()

    for t in asyncio.run(_with_tokens(_settings(args), list_tokens)):
        state = "revoked" if t.revoked_at else "active"
        expires = t.expires_at.isoformat() if t.expires_at else "never"
        role = "admin" if t.is_admin else "user"
        print(f"{t.id}\t{t.user}\t{role}\t{state}\texpires={expires}\tgroups={','.join(t.groups)}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from app.domain.errors import NotFound

    async def revoke(tokens):
        await tokens.revoke(args.id)

    try:
        asyncio.run(_with_tokens(_settings(args), revoke))
    except NotFound as exc:
        print(f"jobgraph: {exc.message}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from app.graphql.schema import sdl

    text = sdl()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="jobgraph", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API (GraphQL at /graphql)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument(
        "--workers", type=int, default=1,
        help="worker processes (PostgreSQL with kubernetes pools only; default 1)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--data-dir", type=Path)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token", required=True)
    create = token.add_parser("create", help="create a token and print it (only this once)")
    create.add_argument("--user", required=True)
    create.add_argument("--admin", action="store_true", help="may see and act on every job")
    create.add_argument("--group", action="append", help="a group the user belongs to (repeatable)")
    create.add_argument("--expires", type=_parse_duration, help="lifetime, e.g. 30d, 12h")
    create.add_argument("--data-dir", type=Path)
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", help="list tokens (no secrets)")
    listing.add_argument("--data-dir", type=Path)
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")
    revoke.add_argument("--data-dir", type=Path)
    revoke.set_defaults(func=cmd_token_revoke)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", "-o")
    export.set_defaults(func=cmd_export_schema)
    return root


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as error:  # a JOBGRAPH_* variable that does not parse
        for problem in error.errors():
            name = "JOBGRAPH_" + "_".join(str(p) for p in problem["loc"]).upper()
            print(f"jobgraph: {name}: {problem['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
