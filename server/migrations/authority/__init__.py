"""The authority database's revisions (Alembic version table ``vf_authority_alembic``)."""
