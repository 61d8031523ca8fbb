"""NGSI-LD's error shape (RFC 7807 ProblemDetails with ETSI's error types)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
# ETSI GS CIM 009, clause 5.5.2: the error type for each failure.
_KIND_BY_STATUS = {
    400: "BadRequestData",
    401: "InvalidRequest",
    403: "InvalidRequest",
    404: "ResourceNotFound",
    405: "InvalidRequest",
    406: "InvalidRequest",
    409: "AlreadyExists",
    413: "RequestEntityTooLarge",
    415: "InvalidRequest",
    422: "InvalidRequest",
    429: "InvalidRequest",
    501: "OperationNotSupported",
    503: "InternalError",
    504: "InternalError",
}
_TITLES = {
    "BadRequestData": "The request includes input data which does not meet the requirements",
    "InvalidRequest": "The request associated to the operation is syntactically invalid",
    "ResourceNotFound": "The referred element does not exist",
    "AlreadyExists": "The referred element already exists",
    "OperationNotSupported": "The operation is not supported",
    "TooComplexQuery": "The query is too complex to be served",
    "InternalError": "There has been an error during the operation execution",
    "RequestEntityTooLarge": "The request is too large",
    "LdContextNotAvailable": "A remote JSON-LD @context could not be retrieved",
}


class NgsiLdError(Exception):
    """A failure answered in NGSI-LD's shape."""

    def __init__(self, status: int, detail: str, kind: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _KIND_BY_STATUS.get(status, "InternalError")

    def body(self) -> dict[str, object]:
        return {
            "type": ERROR_BASE + self.kind,
            "title": _TITLES.get(self.kind, self.kind),
            "status": self.status,
            "detail": self.detail,
        }

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(), status_code=self.status, media_type="application/json", headers=headers
        )


def bad_request(detail: str) -> NgsiLdError:
    return NgsiLdError(400, detail)


def invalid_request(detail: str) -> NgsiLdError:
    return NgsiLdError(400, detail, "InvalidRequest")
