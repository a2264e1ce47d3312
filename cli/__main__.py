"""``python -m veilface.cli ...`` is ``veilface ...`` (how ``server.launch`` starts each service)."""

from veilface.cli.app import main

if __name__ == "__main__":
    main()
