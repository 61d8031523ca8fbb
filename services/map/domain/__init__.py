"""Map domain logic: pure geometry and tenancy rules, no gRPC, no files."""
