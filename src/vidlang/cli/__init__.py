"""The ``vidlang`` command line. Each module in this package that defines ``register(app)`` adds
its commands; :mod:`vidlang.cli.main` discovers them, so adding a command touches one file."""
