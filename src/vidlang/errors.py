"""User-facing errors. The CLI prints these as one line and exits non-zero, never a traceback."""

from __future__ import annotations

from pathlib import Path


class VidlangError(Exception):
    """Base class for errors caused by the user's input, configuration or environment."""


class DataError(VidlangError):
    """Bad input data: names the file, and the line or record, and what is wrong."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 record: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.record = record
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
        if record is not None:
            where = f"{where} (record {record})" if where else f"record {record}"
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class ConfigError(VidlangError):
    """An invalid configuration: unknown key, wrong type or bad value; names the key."""


class RegistryError(VidlangError):
    """A name that is not registered (model, dataset, loss, encoder, reader ...)."""


class NonFiniteError(VidlangError):
    """A NaN or infinite number where a model needs finite ones (a training loss, weights about
    to be saved); names where it was found."""


class TrainingInterrupted(VidlangError):
    """Training stopped on SIGINT / SIGTERM after saving its resumable state; the CLI exits 130."""

    exit_code = 130
