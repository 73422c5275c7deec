"""The ``ringfence`` command: serve, demo, tokens, configuration, database.

Commands call the same services as the API; this module only parses and formats. Every command
reads ``RINGFENCE_DATABASE_URL`` (default: the embedded SQLite file ``./ringfence.db``).
Expected failures print the reason and exit with a code by kind: 3 invalid, 4 not found,
5 conflict, 6 not allowed, 7 unavailable.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ringfence.bootstrap import Container, build, schema_status, upgrade_schema
from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RingfenceError,
    Unauthenticated,
    Unavailable,
)
from ringfence.services.configuration import (
    apply_configuration,
    get_configuration,
    validate_configuration,
)
from ringfence.services.demo import load_demo
from ringfence.services.tokens import create_token, list_tokens, revoke_token
from ringfence.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="Ringfence: inventory visibility and allocation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Create, list and revoke access tokens.", no_args_is_help=True)
config_app = typer.Typer(help="Show, validate and apply configurations.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

EXIT_CODES: tuple[tuple[type[RingfenceError], int], ...] = (
    (Invalid, 3),
    (NotFound, 4),
    (Conflict, 5),
    (Forbidden, 6),
    (Unauthenticated, 6),
    (Unavailable, 7),
)

T = TypeVar("T")

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment id")]


def _fail(error: RingfenceError) -> typer.Exit:
    err.print(f"[bold red]error[/] ({error.code}): {error.detail}", highlight=False)
    for issue in error.issues:
        err.print(f"  - {issue.path or '(document)'}: {issue.message}", highlight=False)
    code = next((c for kind, c in EXIT_CODES if isinstance(error, kind)), 1)
    return typer.Exit(code)


def _run(work: Callable[[Container], Awaitable[T]], *, upgrade: bool = False) -> T:
    """Run one async use case against the configured database."""
    settings = Settings()
    if upgrade:
        upgrade_schema(settings.database_url)
    else:
        _require_schema(settings)

    async def main() -> T:
        container = build(settings)
        try:
            return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except RingfenceError as error:
        raise _fail(error) from None


def _require_schema(settings: Settings) -> None:
    current, head = schema_status(settings.database_url)
    if current == head:
        return
    if settings.database_url.startswith("sqlite"):
        upgrade_schema(settings.database_url)
        return
    err.print(
        f"[bold red]error[/]: the database schema is at {current or 'nothing'}, "
        f"this version needs {head}; run `ringfence db upgrade`"
    )
    raise typer.Exit(7)


def _admin(environment_id: str) -> Principal:
    """Whoever runs the CLI has the database itself, so acts as an administrator."""
    return Principal(environment_id, Role.ADMIN, f"cli:{os.environ.get('USER', 'operator')}")


# -- serve ----------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve the API, its docs (/docs) and health checks."""
    settings = Settings()
    _require_schema(settings)
    err.print(
        f"Ringfence on http://{host}:{port}  (docs: /docs, database: "
        f"{_redacted(settings.database_url)}, workers: {workers})",
        highlight=False,
        soft_wrap=True,
    )
    if workers > 1 and settings.database_url.startswith("sqlite"):
        err.print(
            f"[yellow]warning[/]: SQLite has one writer; {workers} processes wait for its file "
            "lock in turn, which is slower than one process. Use --workers 1, or PostgreSQL "
            "for more (docs/scaling.md).",
            highlight=False,
            soft_wrap=True,
        )
    uvicorn.run(
        "ringfence.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
        server_header=False,
    )


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, location = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{location}" if ":" in credentials else f"{user}@{location}"
    return f"{scheme}{sep}{rest}"


# -- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment to (re)create")] = "demo",
    products: Annotated[int, typer.Option(min=1, max=5000, help="How many products")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same data")] = 7,
) -> None:
    """Load a realistic demo environment (replacing it if it exists) and print a sign-in token."""

    async def work(container: Container) -> Any:
        with Progress(
            TextColumn("Loading demo data"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task("load", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await load_demo(
                container.uow,
                environment_id=env,
                products=products,
                seed=seed,
                progress=progress,
            )

    summary = _run(work, upgrade=True)
    out.print(
        f"Environment [bold]{summary.environment_id}[/]: {summary.products} products, "
        f"{summary.rows} stock rows. Admin token (shown once):",
        highlight=False,
    )
    typer.echo(summary.token.token)


# -- tokens ---------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    env: EnvOption,
    role: Annotated[str, typer.Option(help="reader, writer, planner or admin")],
    name: Annotated[str | None, typer.Option(help="A name to list and revoke it by")] = None,
    org: Annotated[
        list[str] | None, typer.Option("--org", help="Limit to this organization (repeatable)")
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option("--groups", help="Limit to a group-path prefix, e.g. channel=Web"),
    ] = None,
) -> None:
    """Create a token (and the environment, if new). The token is the last line printed."""
    try:
        parsed_role = Role.parse(role)
    except RingfenceError as error:
        raise _fail(error) from None
    issued = _run(
        lambda c: create_token(
            c.uow,
            Principal.operator(env),
            parsed_role,
            name=name,
            organizations=org or (),
            groups=groups or (),
        )
    )
    out.print(
        f"Created token [bold]{issued.record.name}[/] ({issued.record.role.value}) for "
        f"environment [bold]{env}[/]. It is shown only once:",
        highlight=False,
    )
    typer.echo(issued.token)


@token_app.command("list")
def token_list(env: EnvOption) -> None:
    """List the tokens of an environment (never their secrets)."""
    records = _run(lambda c: list_tokens(c.uow, Principal.operator(env)))
    table = Table("name", "role", "organizations", "groups", "created", "revoked")
    for record in records:
        table.add_row(
            record.name,
            record.role.value,
            ", ".join(record.organizations or ()) or "all",
            ", ".join(f"{k}={v}" for k, v in record.group_scope) or "all",
            record.created_at.strftime("%Y-%m-%d %H:%M"),
            record.revoked_at.strftime("%Y-%m-%d %H:%M") if record.revoked_at else "",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(name: str, env: EnvOption) -> None:
    """Revoke a token by name; its holder is refused from the next request on."""
    record = _run(lambda c: revoke_token(c.uow, Principal.operator(env), name))
    out.print(f"Token [bold]{record.name}[/] of environment [bold]{env}[/] is revoked.")


# -- configuration --------------------------------------------------------------------------


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        err.print(f"[bold red]error[/]: cannot read {path}: {error.strerror}")
        raise typer.Exit(3) from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        err.print(f"[bold red]error[/]: {path} is not valid {path.suffix.lstrip('.')}: {error}")
        raise typer.Exit(3) from None


@config_app.command("show")
def config_show(
    env: EnvOption,
    version: Annotated[int | None, typer.Option(help="An earlier version")] = None,
) -> None:
    """Print the configuration as JSON (with its version)."""
    current = _run(lambda c: get_configuration(c.uow, _admin(env), env, version))
    typer.echo(json.dumps({"version": current.version, **current.document}, indent=2))


@config_app.command("validate")
def config_validate(file: Path) -> None:
    """Check a configuration file (JSON or TOML) without applying it."""
    document = _read_document(file)
    try:
        validate_configuration(document)
    except RingfenceError as error:
        raise _fail(error) from None
    out.print(f"{file} is a valid configuration.")


@config_app.command("apply")
def config_apply(file: Path, env: EnvOption) -> None:
    """Validate a configuration file and make it the environment's current configuration."""
    document = _read_document(file)
    if isinstance(document, dict):
        document.pop("version", None)
    result = _run(lambda c: apply_configuration(c.uow, _admin(env), env, document))
    out.print(f"Environment [bold]{env}[/] now runs configuration version {result.version}.")


# -- database -------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to this version's."""
    settings = Settings()
    upgrade_schema(settings.database_url)
    current, _ = schema_status(settings.database_url)
    out.print(f"Database {_redacted(settings.database_url)} is at schema revision {current}.")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
