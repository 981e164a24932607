"""One typed settings object, read from ``FLOWGATE_*`` environment variables."""

from __future__ import annotations

import logging
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "changethis", "flowgate"}


class Settings(BaseSettings):
    """Process configuration. Every field maps to ``FLOWGATE_<NAME>``.

    The secret key, when not given, is generated once and persisted in the data directory with
    0600 permissions so tokens survive restarts; it is never logged. In production it must be
    given: a generated key lives in one data directory only, and losing it invalidates every
    gateway token.
    """

    model_config = SettingsConfigDict(env_prefix="FLOWGATE_", extra="ignore")

    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    public_url: str | None = None
    redis_url: str | None = None
    log_level: str = "INFO"
    #: auto: readable lines when stderr is a terminal, JSON lines otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    #: ``flowgate serve`` migrates the schema before serving; when false it refuses to serve a
    #: schema that is not at the newest migration (run ``flowgate db upgrade`` first).
    migrate_on_start: bool = True

    bootstrap_admin_email: str = "admin@flowgate.local"
    bootstrap_admin_password: SecretStr | None = None

    access_token_ttl_minutes: int = Field(default=12 * 60, ge=1)
    opamp_token_ttl_days: int = Field(default=365, ge=1)
    registration_token_default_days: int = Field(default=30, ge=1)

    health_healthy_seconds: float = Field(default=60, gt=0)
    health_warning_seconds: float = Field(default=300, gt=0)
    #: The health sweep (flowgate.gateways.sweep): how often, fleet-wide, the stored health of
    #: silent gateways is aged, and how long health transitions are kept.
    health_sweep_seconds: float = Field(default=5.0, gt=0, le=60)
    health_history_days: float = Field(default=30, gt=0)

    #: How often buffered heartbeat state (last_seen, versions, metrics) is written in one batch.
    flush_interval_seconds: float = Field(default=5.0, gt=0, le=30)
    #: Native OpAMP agents that send nothing for this many heartbeat intervals are marked inactive.
    opamp_heartbeat_interval_seconds: int = Field(default=30, ge=1)
    opamp_missed_heartbeats: int = Field(default=3, ge=2)
    opamp_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    opamp_max_connections: int = Field(default=50_000, ge=1)
    #: Agent messages per second above which HTTP polls are answered 503 + Retry-After.
    opamp_max_messages_per_second: float = Field(default=5_000, gt=0)
    #: OpAMP "come back later" answers (503 + Retry-After, UNAVAILABLE + retry_info) give
    #: ``opamp_retry_after_seconds``, or less when the refusing queue gives the agent a sooner
    #: slot (enrolments: after the queue and the agents refused before), give or take
    #: ``opamp_retry_jitter`` of it, uniformly at random in whole seconds (30 and 0.5:
    #: 15..45 s), so a refused storm does not return at once.
    opamp_retry_after_seconds: int = Field(default=30, ge=1)
    opamp_retry_jitter: float = Field(default=0.5, ge=0, le=1)
    #: OpAMP work needing the database (enrolment, loading an agent) that may run at once, and
    #: how many may wait before agents are told to retry later.
    opamp_db_concurrency: int = Field(default=6, ge=1)
    opamp_max_queued: int = Field(default=2_000, ge=1)
    #: New agents enrolling at once are enrolled in batches (flowgate.opamp.enroller): at most
    #: this many per transaction, gathered for up to this long when no batch is running.
    opamp_enrol_batch_max: int = Field(default=200, ge=1)
    opamp_enrol_batch_wait_seconds: float = Field(default=0.002, ge=0, le=1)

    #: Move surviving objects out of the collector's reach this often (0 = never); see
    #: flowgate.fleet.gcstats and docs/benchmarks.md (10k agents: p99 675 ms -> 3.6 ms).
    #: Undo it (so garbage cycles among them can be collected) this often.
    gc_freeze_seconds: float = Field(default=20, ge=0)
    gc_unfreeze_seconds: float = Field(default=3600, ge=0)

    #: Sign-in throttling (flowgate.auth.throttle): failures counted within a sliding window;
    #: over the limit an account or a client address is refused (429) until the window passes.
    login_failure_window_seconds: float = Field(default=15 * 60, gt=0)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    #: After n failures an account waits base * 2**(n-1) seconds before the next try (0 = off).
    login_delay_base_seconds: float = Field(default=1.0, ge=0)

    #: How often each replica checks the rollouts it drives (batches, timeouts, failures).
    rollout_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Alerting (flowgate.alerts): rules are evaluated this often, by one replica at a time.
    alert_interval_seconds: float = Field(default=30, gt=0, le=3600)
    #: Webhook deliveries: timeout of one attempt, attempts before giving up, and the delay
    #: before the first retry (doubling with each attempt, at most 10 minutes).
    alert_webhook_timeout_seconds: float = Field(default=10, gt=0, le=120)
    alert_webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    alert_webhook_backoff_seconds: float = Field(default=5, gt=0, le=3600)
    #: Browser sessions (flowgate.auth.sessions): lifetime of the session cookie, and whether
    #: ``X-Forwarded-Proto`` from a proxy decides that the cookies are marked ``Secure``.
    session_ttl_minutes: float = Field(default=12 * 60, gt=0)
    trust_proxy_headers: bool = False
    #: Live events (flowgate.events): a keep-alive comment this often on every open stream, and
    #: each stream's credential checked again this often (a revoked one ends the stream).
    events_ping_seconds: float = Field(default=15, gt=0)
    events_revalidate_seconds: float = Field(default=60, gt=0)
    #: The built web UI served at ``/`` (default: the ``ui/static`` directory of the package).
    ui_dir: Path | None = None

    #: Audit log (flowgate.audit): entries older than this many days are pruned (0 = keep
    #: every entry), by one replica at a time, at most once per interval.
    audit_retention_days: int = Field(default=365, ge=0)
    audit_prune_interval_seconds: float = Field(default=3600, gt=0)
    #: ``/metrics`` (docs/observability.md): when set, scrapes must send
    #: ``Authorization: Bearer <token>``. Fleet gauges are recomputed this often, in the
    #: background (one grouped query), never per scrape.
    metrics_token: SecretStr | None = None
    metrics_fleet_seconds: float = Field(default=15, gt=0)
    #: FlowGate's own traces (flowgate.selftelemetry, on with OTEL_EXPORTER_OTLP_ENDPOINT): the
    #: share of OpAMP messages traced; the rest run with no span at all.
    otel_opamp_sample_ratio: float = Field(default=0.01, ge=0, le=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    summary_cache_seconds: float = Field(default=2.0, ge=0)

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        value = value.lower()
        if value not in {"production", "development", "test"}:
            raise ValueError("must be production, development or test")
        return value

    @model_validator(mode="after")
    def _thresholds(self) -> Settings:
        if self.health_warning_seconds < self.health_healthy_seconds:
            raise ValueError("FLOWGATE_HEALTH_WARNING_SECONDS must be >= HEALTHY_SECONDS")
        if self.secret_key is not None:
            raw = self.secret_key.get_secret_value()
            if raw.lower() in _PLACEHOLDER_SECRETS or len(raw) < 32:
                raise ValueError(
                    "FLOWGATE_SECRET_KEY must be at least 32 characters and not a placeholder"
                )
        elif self.environment == "production":
            raise ValueError(
                "FLOWGATE_ENVIRONMENT=production needs FLOWGATE_SECRET_KEY (a generated key would "
                "exist in this data directory only), e.g. export FLOWGATE_SECRET_KEY="
                "$(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'flowgate.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def listens_on_all_interfaces(self) -> bool:
        return self.host in {"0.0.0.0", "::"}  # noqa: S104

    @property
    def resolved_public_url(self) -> str:
        """FLOWGATE_PUBLIC_URL, else this host and port (127.0.0.1 when listening on all
        interfaces, which is wrong for any gateway on another machine)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.listens_on_all_interfaces else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url_is_https(self) -> bool:
        return bool(self.public_url and self.public_url.lower().startswith("https://"))

    @property
    def opamp_endpoint(self) -> str:
        return f"{self.resolved_public_url}/api/v1/opamp/v1/opamp"

    @cached_property
    def signing_key(self) -> str:
        """The JWT signing key: the configured one, else one generated and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its key
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        log.info("generated a secret key", extra={"path": str(path)})
        return key


def get_settings() -> Settings:
    return Settings()
