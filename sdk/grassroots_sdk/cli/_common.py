"""What every command shares: the client from flags and environment, output, and errors
as one readable line on stderr with a non-zero exit code."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from grassroots_sdk.client import Client
from grassroots_sdk.errors import GrassrootsError

P = ParamSpec("P")
T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
DEBUG_VARIABLE = "GRASSROOTS_DEBUG"  # set to 1 for a traceback instead of one line


@dataclass
class Settings:
    url: str | None
    api_key: str | None
    tenant: str | None
    json: bool

    def client(self) -> Client:
        return Client(self.url, api_key=self.api_key, tenant=self.tenant)


def settings(ctx: typer.Context) -> Settings:
    found = ctx.find_root().obj
    assert isinstance(found, Settings)
    return found


def emit(value: Any) -> None:
    """One JSON document on stdout (for `--json`)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def rpc_line(exc: BaseException) -> str:
    """A gRPC error as `STATUS: what it said` (never its repr with the debug string);
    "" for anything else."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if not (callable(code) and callable(details)):
        return ""
    try:
        status, said = code(), details()
    except Exception:  # not a gRPC error after all
        return ""
    name = getattr(status, "name", None)
    if not isinstance(name, str):
        return ""
    return f"{name}: {' '.join(str(said or '').split()) or 'no details'}"


def handles_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Any failure becomes `error: ...` on stderr and exit code 1 (2 for bad usage)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except GrassrootsError as exc:
            raise fail(one_line(exc)) from None
        except FileNotFoundError as exc:
            raise fail(f"{exc.filename}: no such file") from None
        except Exception as exc:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise fail(rpc_line(exc) or f"{type(exc).__name__}: {one_line(exc)}") from None

    return run
