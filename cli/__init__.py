"""veilface.cli: the only place the ``veilface`` command is assembled (docs/design.md, "Architecture")."""
