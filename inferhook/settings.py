"""Configuration, read once from the environment into typed objects.

Every variable starts with INFERHOOK_; each section has its own prefix
(INFERHOOK_KAFKA_…, INFERHOOK_DATABASE_…, INFERHOOK_WEBHOOK_…). Defaults match the
dev stack that `inferhook up` starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class KafkaSettings(BaseSettings):
    """Where Kafka is and how our topics are laid out."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_KAFKA_", extra="ignore")

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

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_DATABASE_", extra="ignore")

    url: SecretStr = SecretStr("postgresql://inferhook@127.0.0.1:55432/inferhook")
    """libpq-style URL (postgresql://user:password@host:port/db)."""
    pool_size: int = 10
    """Connections kept open per process."""

    @property
    def sqlalchemy_url(self) -> str:
        """The same URL with the asyncpg driver named, for SQLAlchemy."""
        url = self.url.get_secret_value()
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)


class WebhookSettings(BaseSettings):
    """How the dispatcher delivers webhooks."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_WEBHOOK_", extra="ignore")

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


class Settings(BaseSettings):
    """Everything a service needs; build it once in main() and pass it down."""

    model_config = SettingsConfigDict(env_prefix="INFERHOOK_", extra="ignore")

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
