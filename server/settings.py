"""Settings from ALPHANODE_* environment variables, overridable by command-line options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///alphanode.db"


class Settings(BaseSettings):
    """Everything the service reads from its environment. Built by the CLI or by tests, never at import."""

    model_config = SettingsConfigDict(env_prefix="ALPHANODE_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store: sqlite:///path (default, relative to the working "
        "directory) or postgresql://user@host/db (with ?pgbouncer=true through PgBouncer or another pooler "
        "in transaction mode: no prepared statement is kept; see models.engine)",
    )
    read_database_url: str | None = Field(
        default=None,
        description="A PostgreSQL streaming replica of the store for public reads (requests without a token); "
        "writes and editors' reads stay on database_url. Read only while it has replayed every purged write and "
        "is at most replica_max_lag behind; the primary serves meanwhile (server/replica.py)",
    )
    replica_max_lag: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a read replica may be behind the primary and still be read from",
    )
    replica_check_interval: float = Field(
        default=0.25,
        gt=0,
        description="How often each process asks the primary and the replica where they are, seconds",
    )
    host: str = Field(default="127.0.0.1", description="Interface `alphanode serve` listens on")
    port: int = Field(default=8000, description="Port `alphanode serve` listens on")
    workers: int = Field(
        default=1,
        ge=1,
        description="Server processes `alphanode serve` runs on the one port, each serving the whole API "
        "with indexes and caches of its own (see README, Workers); a worker that dies is replaced",
    )
    reuse_port: bool = Field(
        default=False,
        description="With several workers: each listens on a socket of its own (SO_REUSEPORT), and the kernel "
        "spreads connections over them evenly; a worker that dies also resets the connections waiting for it "
        "(see README, Workers)",
    )
    metrics_dir: str | None = Field(
        default=None,
        description="With several workers: the folder where they keep their metrics for /metrics to add up, "
        "emptied of them at start (default: a new temporary folder, removed on exit)",
    )
    index_dir: str | None = Field(
        default=None,
        description="The folder where the workers of one instance share the fact index (loaders.fact_files): "
        "one copy in memory for all of them. `alphanode serve` makes a new one at each start and removes it on "
        "exit; without one (an app built by another server) each process keeps its own",
    )
    env: Literal["development", "production"] = Field(
        default="development", description="production serves GraphiQL to editors only"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="uvicorn's log level")
    read_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Connections per process for reads (default: 2 on SQLite, 8 on PostgreSQL; see loaders.db)",
    )

    # HTTP caching and the response cache (server/caching.py).
    cache: bool = Field(default=True, description="Keep responses of public queries in a cache")
    redis_url: str | None = Field(default=None, description="Share the cache (and persisted queries) through Redis")
    redis_prefix: str = Field(default="alphanode:", description="Prefix of every Redis key the service writes")
    redis_timeout: float = Field(
        default=0.5,
        gt=0,
        description="Longest wait for Redis to connect or answer, seconds; past it the service serves without "
        "Redis (uncached) until Redis answers again",
    )
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, description="Size of the in-process cache")
    cache_max_age: int = Field(default=60, description="Cache-Control max-age of public GET responses, seconds")
    cache_stale_while_revalidate: int = Field(
        default=300, description="Cache-Control stale-while-revalidate of public GET responses, seconds"
    )
    purge_webhook: str | None = Field(default=None, description="URL that receives purged surrogate keys (a CDN)")
    cors_origins: str | None = Field(
        default=None,
        description="Origins whose pages may query the API from a browser, comma-separated "
        "(https://www.example.com,https://preview.example.com); none by default, so that a page on another "
        "origin can read no answer. Pages of a listed origin may send the Authorization header; a page of any "
        "other origin gets no CORS header and its browser withholds the answer",
    )
    cors_max_age: int = Field(
        default=600,
        ge=0,
        description="Seconds a browser may keep the answer to a CORS preflight (Access-Control-Max-Age)",
    )
    varnish_purge_urls: str | None = Field(
        default=None,
        description="Varnish servers in front of the instances, comma-separated (http://127.0.0.1:6081): after "
        "purging its own cache, each process sends each of them a PURGE naming the keys a write changed in a "
        "Surrogate-Key header, as deploy/varnish/alphanode.vcl expects (server/purging.py)",
    )
    varnish_repurge_delay: float = Field(
        default=2.0,
        ge=0,
        description="Seconds after which each Varnish purge is sent again, dropping a response computed before "
        "the write that reached Varnish after the first purge; 0 sends each purge once",
    )
    purge_interval: float = Field(default=0.1, description="How often each process reads the purge log, seconds")

    wal_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="SQLite: the write-ahead log is checkpointed and emptied once it passes this size (store/wal.py)",
    )

    # Persisted queries (server/persisted.py).
    persisted_only: bool = Field(default=False, description="Run registered operations only")
    persisted_dir: str | None = Field(default=None, description="Folder of registered .graphql operations")

    # Limits (graph/limits.py has the reasons for each default).
    max_body_bytes: int = Field(default=1_000_000, description="Largest request body accepted, in bytes")
    max_depth: int = Field(default=12, description="Deepest nesting of fields in an operation")
    max_aliases: int = Field(default=30, description="Most aliases in a document")
    max_tokens: int = Field(default=5_000, description="Most tokens in a document")
    max_nodes: int = Field(default=5_000, description="Most nodes an operation may return (GitHub-style count)")
    request_timeout: float = Field(default=10.0, description="Longest an operation may run, seconds")

    @property
    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` as a list, without blanks."""
        return [origin.strip() for origin in (self.cors_origins or "").split(",") if origin.strip()]
