"""A tiny served collection for the `vidlang serve` tests (no test in here).

``serve_demo`` (session fixture, imported by conftest.py) builds it once with the same code as
``make serve`` (:func:`vidlang.serve.demo.build_demo_collection`) at the smallest sizes: 10
SynthVL-video videos of 4-8 s at 32x32, a word-level dual encoder and an MMN trained for a few
steps. Setting VIDLANG_SERVE_COLLECTION=<folder of a built demo collection> runs the tests on
that one instead (how docs/img/serve.png was made, on the `make serve` collection).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

RETRIEVAL = ["model.embed_dim=32", "model.text.name=word", "model.text.dim=32", "model.text.vocab_size=2000",
             "data.batch_size=8", "data.select_split=null", "trainer.max_epochs=3", "optim.lr=0.01"]
GROUNDING = ["model.featpool_hidden=8", "model.conv_hidden=8", "model.joint_dim=8", "model.conv_layers=2",
             "model.text.name=word", "model.text.dim=16", "data.select_split=null", "trainer.max_epochs=1",
             "data.batch_size=4"]


@pytest.fixture(scope="session")
def serve_demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """:class:`vidlang.serve.demo.DemoPaths` of the tiny collection (built once per session)."""
    from vidlang.serve.demo import DemoPaths, build_demo_collection

    given = os.environ.get("VIDLANG_SERVE_COLLECTION")
    if given:
        return DemoPaths(Path(given))
    root = tmp_path_factory.mktemp("serve_demo")
    return build_demo_collection(root, n_videos=10, preset="tiny", retrieval=RETRIEVAL, grounding=GROUNDING,
                                 say=lambda _msg: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
