"""The authority: holds the secret key, enforces budgets, keeps the audit chain, signs one-bit decisions."""

from veilface.server.authority.app import create_authority_app

__all__ = ["create_authority_app"]
