from services.kit.errors import InvalidArgument


def test_invalid_argument_moves_under_a_prefix():
    error = InvalidArgument.field("event.category", "is required").under("requests[3].")
    assert [(v.field, v.description) for v in error.violations] == [
        ("requests[3].event.category", "is required")
    ]


def test_domain_errors_cross_a_process_boundary():
    import pickle

    from services.kit.errors import FieldViolation, InvalidArgument, NotFound

    refused = pickle.loads(pickle.dumps(InvalidArgument.field("file", "feature 3: bad ring")))
    assert isinstance(refused, InvalidArgument)
    assert refused.violations == [FieldViolation("file", "feature 3: bad ring")]
    assert str(refused) == "file: feature 3: bad ring"
    missing = pickle.loads(pickle.dumps(NotFound("layer 'x' not found", reason="LAYER")))
    assert (missing.message, missing.reason) == ("layer 'x' not found", "LAYER")
