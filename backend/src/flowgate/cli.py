"""The ``flowgate`` command: serve, migrate, and script every setup step.

Secrets a command creates (tokens, keys) are the only thing it prints on stdout, so
``TOKEN=$(flowgate tokens create ...)`` works; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import Database
from flowgate.core.errors import DomainError
from flowgate.core.settings import Settings
from flowgate.orgs.models import Role

app = typer.Typer(
    help="FlowGate: control plane for OpenTelemetry Collector gateways.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
tokens_app = typer.Typer(help="Registration tokens for gateways.", no_args_is_help=True)
configs_app = typer.Typer(help="Configuration templates and their versions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="api-keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(configs_app, name="configs")

err = Console(stderr=True)
T = TypeVar("T")


def _fail(message: str, code: int = 2) -> NoReturn:
    """One plain line on stderr (no markup, no wrapping), then exit ``code``."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # one line per problem, naming the variable, never its value
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            where = "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"FLOWGATE_{where}: {message}" if where else message)
        _fail("invalid settings: " + "; ".join(problems))
    except Exception as exc:  # e.g. pydantic-settings failing to parse a value
        _fail("invalid settings: " + " ".join(str(exc).split()))


def _check_storage(settings: Settings) -> None:
    """The data directory and the database are usable; otherwise one line and exit 2."""
    from flowgate.core import preflight

    try:
        preflight.check_directory(settings.data_dir)
        preflight.check_database(settings.resolved_database_url)
    except preflight.StartupError as exc:
        _fail(str(exc))


def _prepare_database(settings: Settings, *, migrate: bool = True) -> None:
    """:func:`_check_storage`, then migrate, or (``migrate=False``) refuse a schema that is not
    at the newest migration."""
    from flowgate.core import preflight
    from flowgate.core.migrate import is_at_head, upgrade

    _check_storage(settings)
    if migrate:
        upgrade(settings.resolved_database_url)
    elif not is_at_head(settings.resolved_database_url):
        _fail(
            f"the schema of {preflight.redacted(settings.resolved_database_url)} is not at the "
            "newest migration and FLOWGATE_MIGRATE_ON_START is false: run `flowgate db upgrade`"
        )


def _run(action: Callable[[AsyncSession], Awaitable[T]], audited: str | None = None) -> T:
    """Migrate, then run ``action`` in one unit of work (committed when it returns; its events
    reach running servers over Redis when ``FLOWGATE_REDIS_URL`` is set); domain errors exit 1.
    A command that changes state names its ``audited`` action: it is written to the audit log
    (actor ``cli``, the operating-system user) in the same transaction, or on failure alone."""

    async def with_session(uow: Any) -> T:
        return await action(uow.session)

    return _run_work(with_session, audited)


def _note(session: AsyncSession, object_type: str, object_id: Any, org_id: Any = None) -> None:
    """What the command's audit entry is about (the object it made or changed)."""
    from flowgate.core import audit

    record = audit.current(session)
    if record is not None:
        record.target(object_type, object_id)
        record.org_id = org_id if org_id is not None else record.org_id


def _run_work(action: Callable[[Any], Awaitable[T]], audited: str | None = None) -> T:
    """Like :func:`_run`, handing ``action`` the unit of work itself."""
    import getpass

    from flowgate.audit import log as audit_log
    from flowgate.core import audit
    from flowgate.core.routing import outcome
    from flowgate.core.uow import UnitOfWork
    from flowgate.fleet.bus import Bus

    settings = _settings()
    _prepare_database(settings)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        bus = Bus(settings.redis_url)
        await bus.start()
        record = None
        if audited is not None:
            record = audit.AuditRecord(action=audited)
            record.actor("cli", None, f"cli:{getpass.getuser()}"[:320])
        try:
            async with UnitOfWork(db.sessionmaker, bus.publish) as uow:
                if record is not None:
                    audit.bind(uow.session, record)
                result = await action(uow)
                if record is not None:
                    audit_log.stage(uow, record)
                return result
        except Exception as exc:
            if record is not None:
                record.result, record.status_code = outcome(exc)
                with contextlib.suppress(Exception):
                    async with UnitOfWork(db.sessionmaker) as failed:
                        audit_log.stage(failed, record)
            raise
        finally:
            await bus.stop()
            await db.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None


def _check_serving(settings: Settings, workers: int) -> None:
    """Refuse set-ups that would serve incorrectly (exit 2); warn about doubtful ones."""
    if workers > 1 and not settings.redis_url:
        _fail(
            f"--workers {workers} needs FLOWGATE_REDIS_URL: without Redis each worker knows only "
            "its own gateway connections, so config pushes and revocations would miss the "
            "others; set FLOWGATE_REDIS_URL=redis://HOST:6379/0 or use --workers 1"
        )
    if settings.listens_on_all_interfaces and not settings.public_url:
        problem = (
            f"FLOWGATE_PUBLIC_URL is not set while listening on {settings.host}: gateways will be "
            f"told to connect to {settings.resolved_public_url}, which only works on this machine"
        )
        if settings.environment == "production":
            _fail(f"{problem}; set FLOWGATE_PUBLIC_URL to the address gateways use")
        logging.getLogger("flowgate.cli").warning(
            "%s. Set FLOWGATE_PUBLIC_URL to the address gateways use (required in production).",
            problem,
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default FLOWGATE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default FLOWGATE_PORT")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="worker processes (more than 1 needs FLOWGATE_REDIS_URL)")
    ] = 1,
) -> None:
    """Apply migrations and serve the API, the UI and the OpAMP endpoints.

    Exits 2 on a configuration problem (one line on stderr saying what to fix), 3 when the
    server fails to start (e.g. another server without Redis uses the database), 0 on SIGTERM.
    """
    import os

    import uvicorn

    from flowgate.core.logging import configure_logging, logging_config
    from flowgate.serving import run, uvicorn_options

    if host:
        os.environ["FLOWGATE_HOST"] = host
    if port:
        os.environ["FLOWGATE_PORT"] = str(port)
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _check_serving(settings, workers)
    _prepare_database(settings, migrate=settings.migrate_on_start)
    _ = settings.signing_key  # create the persisted key before workers race for it
    err.print(f"FlowGate serving on http://{settings.host}:{settings.port}", soft_wrap=True)
    config = uvicorn.Config(
        "flowgate.serving:create_served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=logging_config(settings.log_level, settings.log_format),
        timeout_graceful_shutdown=5,
        **uvicorn_options(settings.opamp_max_message_bytes),
    )
    raise typer.Exit(run(config))


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Bring the database schema up to date (safe to repeat, and from several processes)."""
    from flowgate.core.logging import configure_logging
    from flowgate.core.migrate import upgrade

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _check_storage(settings)
    upgrade(settings.resolved_database_url, revision)
    err.print("database is up to date")


@db_app.command("check")
def db_check() -> None:
    """Quarantine stored JSON values that cannot be served (undecodable, over the limits of
    stored values, or not an object): each moves to the quarantined_values table and its
    column becomes {}. Prints one line per value moved: table, row id, column, reason."""
    import flowgate.models  # noqa: F401  (every table on Base.metadata, for the scan)
    from flowgate.core.migrate import upgrade
    from flowgate.core.quarantine import check_database

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    findings = asyncio.run(check_database(settings.resolved_database_url))
    for found in findings:
        typer.echo(f"{found.table}\t{found.row_id}\t{found.column}\t{found.reason}")
    err.print(f"{len(findings)} value(s) quarantined" if findings else "no bad values found")


@orgs_app.command("create")
def orgs_create(name: str) -> None:
    from flowgate.orgs import service

    async def action(session: AsyncSession) -> Any:
        org = await service.create_org(session, name)
        _note(session, "org", org.id, org.id)
        return org

    org = _run(action, "org.create")
    typer.echo(str(org.id))


@orgs_app.command("list")
def orgs_list() -> None:
    from sqlalchemy import select

    from flowgate.orgs.models import Organization

    async def action(session: AsyncSession) -> list[Any]:
        return list(await session.scalars(select(Organization).order_by(Organization.name)))

    for org in _run(action):
        typer.echo(f"{org.id}\t{org.name}")


@users_app.command("create")
def users_create(
    email: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    org: Annotated[str, typer.Option(help="organization name")],
    role: Annotated[Role, typer.Option()] = Role.viewer,
    superuser: Annotated[bool, typer.Option(help="may create organizations")] = False,
) -> None:
    from flowgate.orgs import service

    if len(password) < 8:
        err.print("[red]error:[/red] password must be at least 8 characters")
        raise typer.Exit(2)

    async def action(session: AsyncSession) -> Any:
        target = await service.get_org_by_name(session, org)
        user = await service.create_user(
            session, email, password, org_id=target.id, role=role, is_superuser=superuser
        )
        _note(session, "user", user.id, target.id)
        return user

    user = _run(action, "user.create")
    typer.echo(str(user.id))


@users_app.command("add")
def users_add(
    email: str,
    org: Annotated[str, typer.Option(help="organization name")],
    role: Annotated[Role, typer.Option()] = Role.viewer,
) -> None:
    """Add an existing user to another organization (their password is left alone)."""
    from flowgate.orgs import service

    async def action(session: AsyncSession) -> Any:
        target = await service.get_org_by_name(session, org)
        try:
            user = await service.get_user_by_email(session, email)
        except DomainError:
            raise DomainError(
                "No user has this email: create one with `flowgate users create`"
            ) from None
        await service.add_membership(session, target.id, user.id, role)
        _note(session, "user", user.id, target.id)
        return user

    user = _run(action, "user.add")
    err.print(f"{user.email} is now {role.value} in {org}")
    typer.echo(str(user.id))


@users_app.command("set-password")
def users_set_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Set a user's password (prompted, hidden); signs out the user's existing sessions."""
    from flowgate.orgs import service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        err.print("[red]error:[/red] password must be at least 8 characters")
        raise typer.Exit(2)
    if len(password) > 1024:
        err.print("[red]error:[/red] password must be at most 1024 characters")
        raise typer.Exit(2)

    async def action(session: AsyncSession) -> None:
        user = await service.get_user_by_email(session, email)
        await service.set_password(session, user, password)
        _note(session, "user", user.id)

    _run(action, "user.password.reset")
    err.print(f"password changed; existing sessions of {email.strip().lower()} are signed out")


@keys_app.command("create")
def api_keys_create(
    org: Annotated[str, typer.Option(help="organization name")],
    role: Annotated[Role, typer.Option()] = Role.viewer,
    name: Annotated[str, typer.Option()] = "cli",
) -> None:
    """Create an API key and print it (shown once)."""
    from flowgate.orgs import service

    async def action(session: AsyncSession) -> str:
        target = await service.get_org_by_name(session, org)
        issued = await service.create_api_key(session, target.id, name, role)
        _note(session, "api_key", issued.record.id, target.id)
        return issued.key

    typer.echo(_run(action, "api_key.create"))


@tokens_app.command("create")
def tokens_create(
    org: Annotated[str, typer.Option(help="organization name")],
    name: Annotated[str, typer.Option(help="what the token is for")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="default FLOWGATE_REGISTRATION_TOKEN_DEFAULT_DAYS"),
    ] = None,
    max_uses: Annotated[int, typer.Option(min=1, help="registrations allowed")] = 1,
    unlimited: Annotated[bool, typer.Option(help="no limit on registrations")] = False,
) -> None:
    """Create a registration token and print it (shown once)."""
    from flowgate.orgs import service as orgs
    from flowgate.tokens import service

    settings = _settings()

    async def action(session: AsyncSession) -> str:
        target = await orgs.get_org_by_name(session, org)
        issued = await service.create_token(
            session,
            target.id,
            name,
            expires_in_days or settings.registration_token_default_days,
            None if unlimited else max_uses,
        )
        _note(session, "registration_token", issued.record.id, target.id)
        return issued.token

    typer.echo(_run(action, "registration_token.create"))


OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="organization name; may be left out when there is only one"),
]


async def _config_org(session: AsyncSession, name: str | None) -> Any:
    """The organisation a ``configs`` command acts on: ``--org``, else the only one."""
    from sqlalchemy import select

    from flowgate.orgs import service as orgs
    from flowgate.orgs.models import Organization

    if name is not None:
        return await orgs.get_org_by_name(session, name)
    found = list(await session.scalars(select(Organization).limit(2)))
    if len(found) != 1:
        raise DomainError("There are several organizations: pass --org NAME")
    return found[0]


@configs_app.command("create")
def configs_create(
    name: str,
    description: Annotated[str | None, typer.Option(help="what the configuration is for")] = None,
    org: OrgOption = None,
) -> None:
    """Create an empty configuration template and print its id."""
    from flowgate.configs import templates

    async def action(session: AsyncSession) -> Any:
        target = await _config_org(session, org)
        template = await templates.create(session, target.id, name.strip(), description)
        _note(session, "config", template.id, target.id)
        return template

    typer.echo(str(_run(action, "config.create").id))


@configs_app.command("push-version")
def configs_push_version(
    name_or_id: Annotated[str, typer.Argument(metavar="NAME_OR_ID")],
    file: Annotated[Path, typer.Option("--file", help="the configuration; - reads stdin")],
    message: Annotated[str | None, typer.Option(help="what changed and why")] = None,
    content_type: Annotated[
        str, typer.Option(help="text/yaml (a collector configuration) or application/json")
    ] = "text/yaml",
    org: OrgOption = None,
) -> None:
    """Store the file as the template's next version and print the version number. An invalid
    configuration stores nothing and prints its errors as ``line:column: message``."""
    from flowgate.configs import versions

    if content_type not in ("text/yaml", "application/json"):
        err.print("[red]error:[/red] --content-type must be text/yaml or application/json")
        raise typer.Exit(2)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from None
    problems = versions.config_problems(text, content_type)
    if problems:
        for problem in problems:
            where = f"{problem.line}:{problem.column}: " if problem.line is not None else ""
            typer.echo(f"{where}{problem.message}", err=True)  # unwrapped: one line each
        raise typer.Exit(1)

    async def action(session: AsyncSession) -> int:
        from flowgate.configs import templates

        target = await _config_org(session, org)
        template = await templates.resolve(session, target.id, name_or_id)
        record = await versions.add_version(
            session, target.id, template.id, text, content_type, message
        )
        _note(session, "config.version", record.id, target.id)
        return record.version

    typer.echo(str(_run(action, "config.version.create")))


@configs_app.command("list")
def configs_list(org: OrgOption = None) -> None:
    """One line per template: id, name and latest version (- before the first)."""
    from flowgate.configs import templates

    async def action(session: AsyncSession) -> list[Any]:
        target = await _config_org(session, org)
        return await templates.list_templates(session, target.id)

    for template in _run(action):
        latest = "-" if template.latest_version is None else template.latest_version
        typer.echo(f"{template.id}\t{template.name}\t{latest}")


@configs_app.command("diff")
def configs_diff(
    name_or_id: Annotated[str, typer.Argument(metavar="NAME_OR_ID")],
    from_version: Annotated[int, typer.Argument(metavar="FROM", min=1, max=2**31 - 1)],
    to_version: Annotated[int, typer.Argument(metavar="TO", min=1, max=2**31 - 1)],
    org: OrgOption = None,
) -> None:
    """Print the unified diff from version FROM to version TO (nothing when they are equal)."""
    from flowgate.configs import templates, versions

    async def action(session: AsyncSession) -> str:
        target = await _config_org(session, org)
        template = await templates.resolve(session, target.id, name_or_id)
        return await versions.diff(session, target.id, template.id, from_version, to_version)

    typer.echo(_run(action), nl=False)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (no server or database needed)."""
    from flowgate.main import create_app

    json.dump(create_app(Settings(secret_key="x" * 40)).openapi(), sys.stdout, indent=2)
    sys.stdout.write("\n")


def main() -> None:
    app()


@app.command()
def deploy(
    config: Annotated[str, typer.Argument(metavar="CONFIG", help="template name or id")],
    version: Annotated[int | None, typer.Option(min=1, help="default: the newest")] = None,
    selector: Annotated[str | None, typer.Option(help="label selector, e.g. env=prod")] = None,
    gateway: Annotated[list[str] | None, typer.Option(help="a gateway id (repeatable)")] = None,
    all_gateways: Annotated[bool, typer.Option("--all", help="every gateway of the org")] = False,
    staged: Annotated[
        str | None, typer.Option(help='batches, e.g. "1,10%,100%" (default: all at once)')
    ] = None,
    max_failed: Annotated[int, typer.Option(min=0)] = 0,
    batch_timeout: Annotated[int, typer.Option(min=1, help="seconds per batch")] = 300,
    canary: Annotated[str | None, typer.Option(help="selector of the first batch")] = None,
    auto_rollback: Annotated[bool, typer.Option(help="roll back when it fails")] = False,
    wait: Annotated[bool, typer.Option(help="follow the rollout to its end")] = True,
    org: OrgOption = None,
) -> None:
    """Deploy a configuration version and follow the rollout with a progress bar.

    The deployment is recorded here and driven by the running FlowGate server(s) on the same
    database (they send each batch to their agents). Exit status: 0 when it completes, 1 when
    it fails, is cancelled or is rolled back.
    """
    from pydantic import ValidationError as BodyError

    from flowgate.configs import templates
    from flowgate.deployments import service as deployments
    from flowgate.deployments.schemas import DeploymentCreate

    target: dict[str, Any]
    chosen = [bool(selector), bool(gateway), all_gateways]
    if sum(chosen) != 1:
        err.print("[red]error:[/red] pass exactly one of --selector, --gateway or --all")
        raise typer.Exit(2)
    if selector:
        target = {"selector": selector}
    elif gateway:
        target = {"gateway_ids": gateway}
    else:
        target = {"all": True}
    strategy: dict[str, Any] = {"type": "all-at-once"}
    if staged:
        batches: list[int | str] = [
            int(b) if b.strip().isdigit() else b.strip() for b in staged.split(",") if b.strip()
        ]
        strategy = {
            "type": "staged",
            "batches": batches,
            "max_failed": max_failed,
            "batch_timeout_seconds": batch_timeout,
            "canary_selector": canary,
        }

    async def create(uow: Any) -> tuple[str, int]:
        session = uow.session
        target_org = await _config_org(session, org)
        template = await templates.resolve(session, target_org.id, config)
        try:
            body = DeploymentCreate(
                config_id=str(template.id),
                version=version,
                target=target,
                strategy=strategy,
                auto_rollback=auto_rollback,
                message="flowgate deploy",
            )
        except BodyError as exc:
            raise DomainError("; ".join(e["msg"] for e in exc.errors())) from None
        plan = await deployments.prepare(session, target_org.id, body)
        created = await deployments.create(uow, plan, None, send_first=False)
        _note(session, "deployment", created.id, target_org.id)
        return str(created.id), len(plan.targets)

    deployment_id, total = _run_work(create, "deployment.create")
    typer.echo(deployment_id)
    if wait:
        raise typer.Exit(_follow(uuid.UUID(deployment_id), total))


def _follow(deployment_id: uuid.UUID, total: int) -> int:
    """Show the rollout until it ends; the exit status for ``deploy``."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from flowgate.configs.models import Deployment, DeploymentState
    from flowgate.deployments import service as deployments

    ended = {
        DeploymentState.completed: 0,
        DeploymentState.failed: 1,
        DeploymentState.cancelled: 1,
        DeploymentState.rolled_back: 1,
    }

    async def look(session: AsyncSession) -> tuple[Deployment | None, dict[str, int]]:
        found = await session.get(Deployment, deployment_id)
        counts = await deployments.counts(session, [deployment_id])
        return found, counts[deployment_id]

    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as progress:
        task = progress.add_task("deploying", total=total)
        while True:
            found, counts = _run(look)
            if found is None:
                err.print("[red]error:[/red] the deployment is gone")
                return 1
            done = counts["applied"] + counts["failed"] + counts["superseded"]
            progress.update(
                task,
                completed=done,
                description=f"{found.state.value} (batch {found.current_batch + 1}/"
                f"{found.batch_count}, {counts['failed']} failed)",
            )
            if found.state in ended:
                break
            if found.state == DeploymentState.pending and time.monotonic() - started > 15:
                err.print(
                    "[yellow]warning:[/yellow] nothing has picked the deployment up: is a "
                    "FlowGate server running on this database?"
                )
                started = time.monotonic()
            time.sleep(0.5)
    if found.reason:
        err.print(f"{found.state.value}: {found.reason}")
    return ended[found.state]
