import vidlang.models.ccr  # noqa: F401
import vidlang.models.cpl  # noqa: F401
import vidlang.models.mcqa  # noqa: F401
import vidlang.models.mmn  # noqa: F401
import vidlang.models.retrieval  # noqa: F401
import vidlang.models.tempclr  # noqa: F401
import vidlang.models.zeroshot  # noqa: F401
