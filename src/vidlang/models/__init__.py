import vidlang.models.mmn  # noqa: F401
