"""Twin domain logic; arrives with its component issue."""
