"""How events and tasks name a photo the events service keeps (ADR 36).

`media_uris` hold http(s) links or attachments' resource names
(`tenants/{tenant}/attachments/{attachment}`); the components that take media check
the shape here, and the events service whose photo it is checks who may name it.
"""

from __future__ import annotations

import re

ATTACHMENT_NAME = re.compile(r"tenants/([a-z0-9][a-z0-9-]{0,250})/attachments/(at_[a-z0-9]{1,64})")


def is_attachment_name(uri: str) -> bool:
    return ATTACHMENT_NAME.fullmatch(uri) is not None
