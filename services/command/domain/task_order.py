"""The order a task list comes in (AIP-132 `order_by`): one field, newest first unless
asked otherwise. A deadline order puts tasks without that deadline last either way, so
"the next one due" is always at the top."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.kit.errors import InvalidArgument


class TaskOrderField(StrEnum):
    CREATE_TIME = "create_time"
    UPDATE_TIME = "update_time"
    DUE_TIME = "due_time"  # the resolution deadline
    RESPONSE_DUE_TIME = "response_due_time"


@dataclass(frozen=True)
class TaskOrder:
    field: TaskOrderField = TaskOrderField.CREATE_TIME
    descending: bool = True

    @property
    def text(self) -> str:
        return f"{self.field.value}{' desc' if self.descending else ''}"


NEWEST_FIRST = TaskOrder()
_FIELDS = ", ".join(f.value for f in TaskOrderField)


def parse_task_order(text: str) -> TaskOrder:
    """`due_time`, `create_time desc`, ...; empty: newest first. Refuses naming
    `order_by`."""
    words = text.split()
    if not words:
        return NEWEST_FIRST
    if "," in text:
        raise InvalidArgument.field("order_by", "orders by one field; the task id breaks ties")
    if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise InvalidArgument.field("order_by", "is a field, optionally followed by asc or desc")
    try:
        field = TaskOrderField(words[0])
    except ValueError:
        raise InvalidArgument.field("order_by", f"orders by one of: {_FIELDS}") from None
    return TaskOrder(field, len(words) == 2 and words[1].lower() == "desc")
