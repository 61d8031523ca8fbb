"""The gRPC edge: village developers call the components over gRPC with their own key.

Inside the platform every call carries a principal signed with the platform's key
ring, which developers never hold. The edge accepts gRPC with an API key
(`x-api-key`) or an access token (`authorization: Bearer ...`), admits the caller
exactly as the REST gateway does (same authenticator, same rate limits, the
method's declared scope), and forwards the raw request bytes to the component with
a signed principal. See ADR 13.
"""
