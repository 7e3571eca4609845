"""Configuration, read once from the environment into typed objects.

Every variable starts with INFERHOOK_; each section has its own prefix
(INFERHOOK_KAFKA_…, INFERHOOK_DATABASE_…, INFERHOOK_WEBHOOK_…). Defaults match the
dev stack that `inferhook up` starts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseSettings):
    """Where Kafka is and how our topics are laid out."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_KAFKA_", extra="ignore",
                                      use_attribute_docstrings=True)

    bootstrap: str = "127.0.0.1:9092"
    """Comma-separated bootstrap servers."""
    topic_prefix: str = "inferhook"
    """First part of every topic name; tests use a unique one each."""
    partitions: int = 6
    """Partitions for topics this service creates."""
    replication_factor: int = 1
    """Replication factor for topics this service creates."""


class DatabaseSettings(BaseSettings):
    """The PostgreSQL read model."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_DATABASE_", extra="ignore",
                                      use_attribute_docstrings=True)

    url: SecretStr = SecretStr("postgresql://inferhook@127.0.0.1:55432/inferhook")
    """libpq-style URL (postgresql://user:password@host:port/db)."""
    pool_size: int = 20
    """Connections per process: kept open, and the most it uses at once (callers beyond it
    wait for one)."""

    @property
    def sqlalchemy_url(self) -> str:
        """The same URL with the asyncpg driver named, for SQLAlchemy."""
        url = self.url.get_secret_value()
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)


class WebhookSettings(BaseSettings):
    """How the dispatcher delivers webhooks."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_WEBHOOK_", extra="ignore",
                                      use_attribute_docstrings=True)

    retry_schedule: Annotated[list[float], NoDecode] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    )
    """Seconds to wait before each attempt (Standard Webhooks schedule); comma-separated."""
    timeout: float = 15.0
    """Seconds one attempt may take."""
    allow_nets: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = Field(
        default_factory=list
    )
    """Networks webhooks may reach even though they are private or loopback (CIDRs, comma-separated)."""
    max_retry_after: float = 3600.0
    """Longest `Retry-After` (seconds) a receiver may ask for; longer asks are clamped to it."""
    endpoint_concurrency: int = 32
    """Attempts in flight to one endpoint (scheme://host:port) at once, per dispatcher."""
    max_in_flight: int = 1024
    """Attempts in flight per dispatcher, over all endpoints."""
    breaker_failures: int = 5
    """Consecutive failed attempts to one endpoint that open its circuit breaker."""
    breaker_cooldown: float = 10.0
    """Seconds an open breaker holds an endpoint's deliveries back (doubles while it keeps failing)."""
    progress_interval: float = 0.5
    """Least seconds between two output/logs webhooks of one prediction (the last state always goes)."""
    rotation_grace: float = 86400.0
    """Seconds the previous secret keeps signing after `POST /v1/webhooks/default/secret/rotate`."""
    ed25519: bool = False
    """Also sign with a per-owner ed25519 key (`v1a,…` signatures, public key on the secret route)."""
    reaper_interval: float = 5.0
    """Seconds between reaper passes (deadlines, queue expiry, executors that died)."""
    run_grace: float = 30.0
    """Seconds past a model's max_run_seconds before a started prediction is failed `timed_out`."""
    load_grace: float = 1800.0
    """Seconds a prediction may stay `started` in phase `loading` (cold start) before it is failed."""
    retention_interval: float = 60.0
    """Seconds between retention sweeps that clear input/output/logs of expired predictions."""
    max_payload_bytes: int = 256 * 1024
    """Largest `payload: full` body sent to an account endpoint; a larger one is sent thin."""
    disable_after: float = 5 * 86400.0
    """Seconds an account endpoint may fail every attempt before it is disabled (warned at half)."""

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow_nets", mode="before")
    @classmethod
    def _split_nets(cls, value: object) -> object:
        if isinstance(value, str):
            return [ipaddress.ip_network(p.strip()) for p in value.split(",") if p.strip()]
        return value


class ApiSettings(BaseSettings):
    """Ingest API limits and caches (INFERHOOK_API_…)."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_API_", extra="ignore",
                                      use_attribute_docstrings=True)

    key_cache_seconds: float = 30.0
    """How long a verified API key is trusted without asking Postgres (revocation delay)."""
    wait_max_seconds: int = 60
    """Longest `Prefer: wait=n` honoured, and the wait of a bare `Prefer: wait`."""
    stream_keepalive_seconds: float = 15.0
    """Seconds between keep-alive comments on an idle event stream."""
    idempotency_hours: float = 24.0
    """How long an Idempotency-Key is remembered."""
    rate_limit_enabled: bool = True
    """Per-key token buckets on creates (every POST) and reads (every GET)."""
    create_rate: float = 2000.0
    """Creates per second one key may sustain."""
    create_burst: int = 4000
    """Creates one key may make at once before the rate applies."""
    read_rate: float = 20000.0
    """Reads per second one key may sustain."""
    read_burst: int = 40000
    """Reads one key may make at once before the rate applies."""
    queue_depth_limits: dict[str, int] = Field(default_factory=dict)
    """Per model, predictions that may be pending at once, overriding its manifest's
    max_queue_depth (a JSON object, e.g. {"inferhook/spin": 1000}); beyond it, creates get 429."""
    max_in_flight_per_owner: int = 0
    """Predictions one account (all its keys) may have pending or started at once; beyond it,
    creates get 429. 0: unbounded."""
    max_in_flight_per_key: int = 0
    """Predictions made with one API key that may be pending or started at once; beyond it,
    creates with that key get 429 (the account's cap applies too). 0: unbounded."""


class FilesSettings(BaseSettings):
    """Files: uploads, outputs stored as files, signed content links (INFERHOOK_FILES_…)."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_FILES_", extra="ignore",
                                      use_attribute_docstrings=True)

    signing_secret: SecretStr = SecretStr("")
    """HMAC key of signed file links, the same for all services; empty = derived from the database URL."""
    max_upload_bytes: int = 10 * 1024 * 1024
    """Largest file `POST /v1/files` takes (a file named in an input travels base64 in the Kafka request)."""
    upload_ttl_seconds: float = 7 * 86400.0
    """How long an uploaded file is kept (outputs stored as files expire with their prediction's result)."""


class ExecutorSettings(BaseSettings):
    """How an executor runs its models (INFERHOOK_EXECUTOR_…)."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_EXECUTOR_", extra="ignore",
                                      use_attribute_docstrings=True)

    mode: Literal["dedicated", "pooled"] = "dedicated"
    """dedicated: load the listed models at start; pooled: every model, loaded on first request."""
    memory_budget_mb: float = 2048.0
    """Pooled mode: least recently used models are evicted while the warm cache is above this."""
    intra_op_threads: int = 0
    """ONNX Runtime intra-op threads per session; 0 = the cores divided among the served models."""
    max_in_flight: int = 1024
    """Request records held (prefetched or running) per request topic, i.e. per model and
    priority; that topic's consumption pauses above this. Owners are served fairly among
    the records held, so a deeper prefetch reaches past a larger flood of one owner."""
    max_in_flight_mb: float = 64.0
    """The same bound on the records' size (their inputs), per request topic."""
    prefetch_max_bytes: int = 256 * 2**20
    """Bytes of request records held (prefetched or running) over all request topics of one
    executor, whatever the models and priorities: every topic pauses at it and resumes below
    it, so the executor holds at most this plus one record. 0: no cap beyond the per-topic ones."""
    drain_seconds: float = 30.0
    """On SIGTERM (or losing a partition), how long in-flight work may take to finish."""
    session_timeout_ms: int = 10000
    """Kafka group session timeout: how soon a killed executor's requests go to another one."""
    control_history_seconds: float = 3600.0
    """How far back the control topic is read at start, so earlier cancels are honoured."""
    canceled_ids_kept: int = 100_000
    """How many canceled prediction ids each executor remembers."""


class MetricsSettings(BaseSettings):
    """Prometheus metrics (INFERHOOK_METRICS_…); ingest serves them at GET /metrics."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_METRICS_", extra="ignore",
                                      use_attribute_docstrings=True)

    port: int = 0
    """Executor/dispatcher: port of their own /metrics HTTP server; 0 = none."""
    host: str = "127.0.0.1"
    """Executor/dispatcher: address that metrics server binds."""
    refresh_seconds: float = 5.0
    """Seconds between refreshes of gauges that need a query (consumer lag, outbox depth)."""


class TracingSettings(BaseSettings):
    """OpenTelemetry traces (INFERHOOK_TRACING_…); `traceparent` propagates whatever the exporter."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_TRACING_", extra="ignore",
                                      use_attribute_docstrings=True)

    exporter: Literal["none", "console", "otlp"] = "none"
    """Where finished spans go; `otlp` needs the `otlp` extra (OTLP over HTTP)."""
    otlp_endpoint: str = ""
    """OTLP/HTTP traces URL; empty = the exporter's default (OTEL_EXPORTER_OTLP_… variables)."""


class Settings(BaseSettings):
    """Everything a service needs; build it once in main() and pass it down."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_", extra="ignore",
                                      use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the ingest HTTP server binds."""
    port: int = 8080
    """Port of the ingest HTTP server."""
    public_url: str = ""
    """Base URL clients use (for `urls` in responses); default http://host:port."""
    models_dir: Path = REPO_ROOT / "executors" / "models"
    """Folder of model folders (one manifest.yaml each)."""
    executor_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Models this executor serves (owner/name, comma-separated); empty = every model."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body ingest reads."""
    dev: bool = False
    """Development mode: readable logs."""
    state_dir: Path = REPO_ROOT / ".state"
    """Where the dev stack keeps Kafka's and Postgres's data, logs and the dev API key."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @field_validator("executor_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def base_url(self) -> str:
        """Public base URL without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def file_link_secret(self) -> bytes:
        """The HMAC key of signed file links: INFERHOOK_FILES_SIGNING_SECRET, or when that is
        empty one derived from the database URL (every service of a deployment shares that
        URL, and its password keeps the key secret; set the secret where the URL has none)."""
        given = self.files.signing_secret.get_secret_value()
        if given:
            return given.encode()
        url = self.database.url.get_secret_value().encode()
        return hmac.new(url, b"inferhook file links", hashlib.sha256).digest()
