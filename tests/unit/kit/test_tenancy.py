import pytest

from services.kit import tenancy
from services.kit.errors import InvalidArgument


def test_path_and_id_convert_both_ways():
    path = "sh/jiading/anting/xingming"
    assert tenancy.path_to_id(path) == "sh-jiading-anting-xingming"
    assert tenancy.id_to_path(tenancy.path_to_id(path)) == path
    assert tenancy.tenant_name(path) == "tenants/sh-jiading-anting-xingming"


def test_subtree_contains_only_descendants():
    assert tenancy.contains("sh/jiading", "sh/jiading/anting/xingming")
    assert tenancy.contains("sh/jiading", "sh/jiading")
    assert not tenancy.contains("sh/jiading", "sh/jiadingx")
    assert not tenancy.contains("sh/jiading/anting/xingming", "sh/jiading/anting")


@pytest.mark.parametrize(
    "path", ["", "SH/jd", "sh//jd", "sh/jd-x", "sh/" + "a" * 41, "/".join(["a"] * 7)]
)
def test_invalid_paths_are_rejected(path):
    assert not tenancy.is_valid_path(path)
    with pytest.raises(InvalidArgument) as info:
        tenancy.validate_path(path, "tenant")
    assert info.value.violations[0].field == "tenant"


def test_parse_child_name_with_wildcard_and_errors():
    assert tenancy.parse_child_name("tenants/-/events/ev_1", "events") == (None, "ev_1")
    assert tenancy.parse_child_name("tenants/sh-jd/events/ev_1", "events") == ("sh/jd", "ev_1")
    with pytest.raises(InvalidArgument) as info:
        tenancy.parse_child_name("tenants/sh-jd/tasks/t1", "events", field="name")
    assert info.value.violations[0].field == "name"
    with pytest.raises(InvalidArgument):
        tenancy.parse_parent("tenants/SH")


def test_a_tenant_is_named_by_id_or_by_path_alike():
    assert tenancy.path_of("sh-jiading-anting-xingming") == "sh/jiading/anting/xingming"
    assert tenancy.path_of("sh/jiading/anting/xingming") == "sh/jiading/anting/xingming"
    assert tenancy.path_of("sh") == "sh"
    for bad in ("", "Xingming", "sh/jiading-anting", "sh//x", "sh-jiading/"):
        with pytest.raises(InvalidArgument) as info:
            tenancy.path_of(bad, "village")
        assert info.value.violations[0].field == "village"
