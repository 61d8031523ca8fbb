"""Answer UNIMPLEMENTED, with a message that says when, for methods not built yet."""

from __future__ import annotations

from typing import Any, TypeVar

from services.kit.errors import Unimplemented

T = TypeVar("T", bound=type)


def fill_unimplemented(servicer: T, service_full_name: str, arrives_with: str) -> T:
    """Replace every method the servicer inherits from the generated base.

    The generated base answers "Method not implemented!"; a caller deserves to
    know that the contract is real and which release of the component brings it.
    """
    for attr in dir(servicer):
        if attr.startswith("_") or not attr[0].isupper():
            continue
        if attr in servicer.__dict__:
            continue

        def make(method: str) -> Any:
            async def not_yet(self: Any, request: Any, context: Any) -> Any:
                raise Unimplemented(
                    f"{service_full_name}.{method} is part of the v1 contract but not "
                    f"available yet: it arrives with {arrives_with}",
                    reason="NOT_YET_AVAILABLE",
                )

            not_yet.__name__ = method
            return not_yet

        setattr(servicer, attr, make(attr))
    return servicer
