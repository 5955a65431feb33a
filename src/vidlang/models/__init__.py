import vidlang.models.mmn  # noqa: F401
import vidlang.models.retrieval  # noqa: F401
import vidlang.models.mcqa  # noqa: F401
