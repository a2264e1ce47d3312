"""The matcher: stores encrypted templates, blinds comparisons, relays the authority's signed decisions."""

from veilface.server.matcher.app import create_matcher_app

__all__ = ["create_matcher_app"]
