"""``vidlang serve``: search a video collection by text and jump to the moment (docs/serve.md).

:class:`Collection` loads the index, the models and the video table once; :func:`create_app`
wraps it in a FastAPI app (JSON API, a server-rendered page, HTTP Range video streaming).
"""

from vidlang.serve.app import create_app
from vidlang.serve.collection import Collection, ServeSettings

__all__ = ["Collection", "ServeSettings", "create_app"]
