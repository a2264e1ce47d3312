"""veilface server: the matcher and authority services."""
