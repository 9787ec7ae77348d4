"""The one settings class. Every value comes from a `JOBGRAPH_*` environment variable."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.domain.limits import SizeLimits

_SIZES = SizeLimits()  # the defaults


# An origin as browsers send it: scheme://host[:port], no path.
_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def _split_origins(value: str) -> list[str]:
    return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBGRAPH_", extra="ignore")

    data_dir: Path = Path(".jobgraph")
    # Kubernetes pods' logs, archived while they run (default: <data dir>/kubernetes).
    # Several replicas: a directory they all share (with working flock, e.g. NFS v4).
    log_archive_dir: Path | None = None
    # Default: SQLite inside the data dir (see `database_url_resolved`).
    database_url: str | None = None
    pools_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Public base URL (e.g. https://jobs.example.com) for links the server hands out,
    # such as web-terminal URLs; otherwise they are derived from the request.
    public_url: str | None = None
    # Signs web-terminal credentials; default: a key generated once in the data dir.
    secret_key: str | None = None
    terminal_ticket_ttl_seconds: float = Field(default=60.0, gt=0, le=3600)
    # A web-terminal session with no keystroke for this long is closed.
    terminal_idle_seconds: float = Field(default=900.0, gt=0)
    # Create the schema on start-up (alembic upgrade head). Off when an operator
    # runs `jobgraph migrate` as a separate deployment step.
    auto_migrate: bool = True
    stop_grace_seconds: float = Field(default=10.0, ge=0)
    log_level: str = "info"
    # GitHub-style cost: objects a query may return, page sizes multiplied down the tree.
    max_query_cost: int = Field(default=25_000, ge=1)
    # Requests per principal (token bucket): sustained rate and burst; 0 turns it off.
    rate_limit_per_minute: float = Field(default=1200, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # A login (POST /api/login/account) answers a session token valid this long.
    session_ttl_seconds: float = Field(default=12 * 3600, gt=0, le=30 * 86400)
    # Origins (scheme://host[:port], comma-separated) whose pages may call /api, /graphql
    # and the terminal socket from a browser; empty: the server's own origin only.
    cors_origins: str = ""
    # OIDC / JWT bearer tokens (off unless an issuer is set); API tokens keep working.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None  # default: discovered from the issuer
    oidc_user_claim: str = "sub"
    oidc_groups_claim: str = "groups"
    oidc_admin_group: str | None = None
    oidc_algorithms: str = "RS256,ES256"
    oidc_clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    # An unknown key id makes the server fetch the JWKS again, at most this often.
    oidc_jwks_min_refresh_seconds: float = Field(default=10.0, ge=0)

    # Sizes in bytes (README, "Operating"). A request body over this answers 413; it
    # also bounds a WebSocket message.
    max_request_body_bytes: int = Field(default=1_048_576, ge=4096)
    # A job spec: all of it, one command argument, environment variables (count, and
    # bytes of one), labels (count).
    max_job_spec_bytes: int = Field(default=_SIZES.job_spec_bytes, ge=1024)
    max_command_arg_bytes: int = Field(default=_SIZES.command_arg_bytes, ge=256)
    max_job_envs: int = Field(default=_SIZES.job_envs, ge=0)
    max_env_bytes: int = Field(default=_SIZES.env_bytes, ge=256)
    max_job_labels: int = Field(default=_SIZES.job_labels, ge=0)
    # One answer of a log read; the oldest lines beyond it are left out, and said so.
    max_log_answer_bytes: int = Field(default=_SIZES.log_answer_bytes, ge=1024)
    # A local replica's log on disk: past it, the oldest half is dropped (and the log
    # says so in its first line).
    max_log_bytes_on_disk: int = Field(default=100 * 1024 * 1024, ge=262_144)
    # What a client sent, echoed in an error message or a log line, is cut to this.
    max_echo_bytes: int = Field(default=1024, ge=64)
    # Answers to reads of jobs kept until a change to those jobs (app/core/answers.py);
    # 0 turns the cache off.
    answer_cache_bytes: int = Field(default=16 * 1024 * 1024, ge=0)

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: str) -> str:
        for origin in _split_origins(value):
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; write scheme://host[:port] "
                    "(e.g. https://console.example.com), comma-separated"
                )
        return value

    @cached_property
    def cors_origin_list(self) -> tuple[str, ...]:
        """JOBGRAPH_CORS_ORIGINS as origins, lower-cased, without a trailing slash."""
        return tuple(o.lower() for o in _split_origins(self.cors_origins))

    @cached_property
    def size_limits(self) -> SizeLimits:
        return SizeLimits(
            job_spec_bytes=self.max_job_spec_bytes,
            command_arg_bytes=self.max_command_arg_bytes,
            job_envs=self.max_job_envs,
            env_bytes=self.max_env_bytes,
            job_labels=self.max_job_labels,
            log_answer_bytes=self.max_log_answer_bytes,
        )

    @cached_property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'jobgraph.db').resolve()}"
