"""Settings of the two services: one pydantic-settings class each, read from ``VEILFACE_*`` variables.

Matcher: ``VEILFACE_MATCHER_KEYS_DIR`` ``VEILFACE_MATCHER_DATA_DIR`` ``VEILFACE_MATCHER_DATABASE_URL``
``VEILFACE_OPERATOR_TOKENS`` ``VEILFACE_AUTHORITY_URL`` ``VEILFACE_AUTHORITY_TOKEN``
``VEILFACE_AUTHORITY_TIMEOUT`` ``VEILFACE_AUTHORITY_CA_FILE`` ``VEILFACE_MATCH_THRESHOLD``
``VEILFACE_MATCHER_WORKERS`` ``VEILFACE_PSEUDONYM_KEY_FILE``.
Authority: ``VEILFACE_AUTHORITY_KEYS_DIR`` ``VEILFACE_AUTHORITY_DATA_DIR``
``VEILFACE_AUTHORITY_DATABASE_URL`` ``VEILFACE_AUTHORITY_TOKEN`` ``VEILFACE_AUTHORITY_WORKERS`` and the
``VEILFACE_BUDGET_*`` limits. Both: ``VEILFACE_ENVIRONMENT`` (production or development),
``VEILFACE_LOG_LEVEL`` and ``VEILFACE_AUTO_MIGRATE`` (true: upgrade the database schema at start-up).
Production (the default) refuses short tokens and plain HTTP to a remote authority.
Settings that cannot work or are unsafe are refused when the settings are read (a ``ConfigurationError``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from veilface.crypto import ConfigurationError
from veilface.protocol import MODELS

# Cosine thresholds per exact model id, from the model table. A family (ArcFace) has none here: its threshold
# depends on the recognition model, so such a deployment sets VEILFACE_MATCH_THRESHOLD after calibrating.
DEFAULT_THRESHOLDS: dict[str, float] = {model.model_id: model.default_threshold for model in MODELS if not model.family}

SCOPES = frozenset({"enroll", "verify", "admin"})
MIN_OPERATOR_TOKEN_CHARS = 16
MIN_AUTHORITY_TOKEN_CHARS = 32
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")

Environment = Literal["production", "development"]
LogLevel = Literal["debug", "info", "warning", "error"]


def token_id(token: str) -> str:
    """A stable name for a token that does not reveal it (the authority budgets and audits by it)."""
    return hashlib.sha256(b"veilface-token-id\0" + token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OperatorToken:
    token_id: str
    digest: bytes
    scopes: frozenset[str]


def parse_operator_tokens(raw: str) -> tuple[OperatorToken, ...]:
    """``tok1,tok2:enroll+verify`` -> tokens with scopes (all scopes when none are given)."""
    tokens: list[OperatorToken] = []
    for number, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        token, colon, scope_text = item.partition(":")
        if not _TOKEN_CHARS.match(token):
            raise ConfigurationError(f"VEILFACE_OPERATOR_TOKENS entry {number + 1} has an empty or invalid token")
        scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip()) if colon else SCOPES
        unknown = scopes - SCOPES
        if unknown or not scopes:
            raise ConfigurationError(
                f"VEILFACE_OPERATOR_TOKENS entry {number + 1} has unknown scopes {sorted(unknown)}; "
                f"use {'+'.join(sorted(SCOPES))}"
            )
        tokens.append(OperatorToken(token_id(token), hashlib.sha256(token.encode()).digest(), scopes))
    return tuple(tokens)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VEILFACE_", extra="ignore", frozen=True)


class _Storage(_Environment, ABC):
    """Where a service keeps its data: a data directory, holding its SQLite database unless a URL names one."""

    @abstractmethod
    def _location(self) -> tuple[Path, str | None, str]:
        """The data directory, the database URL setting, and the SQLite file's name in that directory."""

    @property
    def database_url(self) -> str:
        data_dir, url, filename = self._location()
        return url or sqlite_url(data_dir / filename)

    @property
    def database_dir(self) -> Path | None:
        """The data directory holding the SQLite database; None when a URL names the database."""
        data_dir, url, _ = self._location()
        return None if url else data_dir


class MatcherStorage(_Storage):
    """The matcher's data: all that ``veilface db`` reads, with no keys or tokens to check."""

    matcher_data_dir: Path = Path("veilface-data/matcher")
    matcher_database_url: str | None = None

    def _location(self) -> tuple[Path, str | None, str]:
        return self.matcher_data_dir, self.matcher_database_url, "matcher.db"


class AuthorityStorage(_Storage):
    """The authority's data: all that ``veilface db`` reads, with no keys or tokens to check."""

    authority_data_dir: Path = Path("veilface-data/authority")
    authority_database_url: str | None = None

    def _location(self) -> tuple[Path, str | None, str]:
        return self.authority_data_dir, self.authority_database_url, "authority.db"


class _ServiceSettings(_Environment):
    environment: Environment = "production"
    log_level: LogLevel = "info"
    # Upgrade the database schema at start-up; off, a service refuses a database that is behind.
    auto_migrate: bool = True
    authority_token: SecretStr = SecretStr("")

    def _check_authority_token(self) -> None:
        token = self.authority_token.get_secret_value()
        if not token:
            raise ConfigurationError("VEILFACE_AUTHORITY_TOKEN is not set (the matcher-authority shared token)")
        if self.environment == "production" and len(token) < MIN_AUTHORITY_TOKEN_CHARS:
            raise ConfigurationError(
                f"VEILFACE_AUTHORITY_TOKEN must have at least {MIN_AUTHORITY_TOKEN_CHARS} characters in production"
            )


class MatcherSettings(_ServiceSettings, MatcherStorage):
    matcher_keys_dir: Path
    operator_tokens: SecretStr = SecretStr("")
    authority_url: str = "http://127.0.0.1:8401"
    # Per call; 1.8 s leaves the matcher's own work room inside the 2 s within which issue 8 wants a 503.
    authority_timeout: float = Field(default=1.8, gt=0, le=30)
    authority_ca_file: Path | None = None
    match_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    matcher_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    pseudonym_key_file: Path | None = None

    @classmethod
    def read(cls, keys_dir: Path, data_dir: Path | None = None) -> MatcherSettings:
        """From the environment, with the key directory and, when given, the data directory ('serve --data')."""
        if data_dir is None:
            return cls(matcher_keys_dir=keys_dir)
        return cls(matcher_keys_dir=keys_dir, matcher_data_dir=data_dir)

    @property
    def pseudonym_key_path(self) -> Path:
        return self.pseudonym_key_file or self.matcher_data_dir / "pseudonym.key"

    def operators(self) -> tuple[OperatorToken, ...]:
        return parse_operator_tokens(self.operator_tokens.get_secret_value())

    def threshold_for(self, model_id: str) -> float:
        if self.match_threshold is not None:
            return self.match_threshold
        try:
            return DEFAULT_THRESHOLDS[model_id]
        except KeyError:
            raise ConfigurationError(
                f"no default match threshold for model {model_id!r}; calibrate one and set VEILFACE_MATCH_THRESHOLD"
            ) from None

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> MatcherSettings:
        """Refuse settings that cannot work or are unsafe outside development."""
        operators = self.operators()
        if not operators:
            raise ConfigurationError("VEILFACE_OPERATOR_TOKENS is not set; the matcher would refuse every request")
        self._check_authority_token()
        if urlsplit(self.authority_url).scheme not in ("http", "https"):
            raise ConfigurationError("VEILFACE_AUTHORITY_URL must be an http:// or https:// URL")
        if self.environment == "production":
            raw_tokens = [item.partition(":")[0].strip() for item in self.operator_tokens.get_secret_value().split(",")]
            if any(0 < len(token) < MIN_OPERATOR_TOKEN_CHARS for token in raw_tokens):
                raise ConfigurationError(
                    f"operator tokens must have at least {MIN_OPERATOR_TOKEN_CHARS} characters in production"
                )
            if urlsplit(self.authority_url).scheme == "http" and not _is_loopback(self.authority_url):
                raise ConfigurationError(
                    "VEILFACE_AUTHORITY_URL uses plain http to a remote host; use https "
                    "(or VEILFACE_ENVIRONMENT=development)"
                )
        return self


class AuthoritySettings(_ServiceSettings, AuthorityStorage):
    authority_keys_dir: Path
    authority_workers: int = Field(default=1, ge=1, le=64)
    # Decisions granted per pseudonymous subject per window: a person retries a few times, not dozens.
    budget_per_subject: int = Field(default=10, ge=1)
    budget_subject_window: int = Field(default=3600, ge=1, description="seconds")
    # Per operator token per day: key recovery with crafted ciphertexts needs ~2N answers (docs/design.md §5.1).
    budget_per_token: int = Field(default=2000, ge=1)
    budget_token_window: int = Field(default=86400, ge=1, description="seconds")
    budget_global_per_minute: int = Field(default=600, ge=1)
    # Decisions per CKKS key over its lifetime; past it the authority refuses until a key renewal.
    budget_per_key: int = Field(default=1_000_000, ge=1)

    @classmethod
    def read(cls, keys_dir: Path, data_dir: Path | None = None) -> AuthoritySettings:
        """From the environment, with the key directory and, when given, the data directory ('serve --data')."""
        if data_dir is None:
            return cls(authority_keys_dir=keys_dir)
        return cls(authority_keys_dir=keys_dir, authority_data_dir=data_dir)

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> AuthoritySettings:
        self._check_authority_token()
        return self
