from services.kit.errors import InvalidArgument


def test_invalid_argument_moves_under_a_prefix():
    error = InvalidArgument.field("event.category", "is required").under("requests[3].")
    assert [(v.field, v.description) for v in error.violations] == [
        ("requests[3].event.category", "is required")
    ]
