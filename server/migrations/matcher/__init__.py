"""The matcher database's revisions (Alembic version table ``vf_matcher_alembic``)."""
