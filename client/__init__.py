"""veilface client: face pipeline, batch enrolment and the Python client API (the CLI is veilface.cli)."""
