"""Dimensions: canonical names and order, validation, canonical keys."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.configuration import (
    DEFAULT_DOCUMENT,
    MAX_DIMENSIONS,
    Configuration,
    default_configuration,
    parse_configuration,
)
from ringfence.domain.dimensions import (
    BASE_DIMENSIONS,
    MAX_DIMENSION_VALUE_LENGTH,
    Dimensions,
    check_text,
)
from ringfence.domain.errors import Invalid

LOCATION = ("dimensions",)

dimension_values = st.text(st.characters(exclude_categories=["C"]), min_size=1, max_size=12)
dimension_maps = st.dictionaries(st.sampled_from(BASE_DIMENSIONS), dimension_values, max_size=8)
casings: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str.lower, str.upper, str.swapcase, str.capitalize, lambda name: name]
)


def pos_store_configuration() -> Configuration:
    """The default configuration, with ``pos`` calling its sites stores and locations aisles."""
    document = copy.deepcopy(dict(DEFAULT_DOCUMENT))
    sources = document["dataSources"]
    assert isinstance(sources, dict)
    sources["pos"]["dimensionMappings"] = {"store": "siteId", "Aisle": "LOCATIONID"}
    return parse_configuration(document)


def resolve(raw: object) -> Dimensions:
    return default_configuration().resolve_dimensions(raw, LOCATION)


def refusal(
    raw: object,
    configuration: Configuration | None = None,
    *,
    data_source: str | None = None,
    require_partition: bool = False,
) -> Invalid:
    configuration = configuration or default_configuration()
    with pytest.raises(Invalid) as caught:
        configuration.resolve_dimensions(
            raw, LOCATION, data_source=data_source, require_partition=require_partition
        )
    return caught.value


def test_dimensions_are_ordered_by_the_base_dimensions_whatever_the_input_order() -> None:
    dimensions = Dimensions([("sizeId", "M"), ("colorId", "red"), ("siteId", "1")])

    assert list(dimensions) == ["siteId", "colorId", "sizeId"]
    assert dimensions.as_dict() == {"siteId": "1", "colorId": "red", "sizeId": "M"}


def test_dimensions_values_are_case_sensitive() -> None:
    assert Dimensions([("colorId", "red")]) != Dimensions([("colorId", "Red")])


def test_dimensions_restricted_to_keeps_only_the_named_dimensions_present() -> None:
    dimensions = Dimensions([("siteId", "1"), ("locationId", "11"), ("colorId", "red")])

    restricted = dimensions.restricted_to(["colorId", "siteId", "sizeId"])

    assert restricted == Dimensions([("siteId", "1"), ("colorId", "red")])


@given(dimension_maps, st.randoms(use_true_random=False))
@settings(max_examples=100)
def test_dimensions_key_is_the_same_for_equal_dimensions_in_any_order(
    values: dict[str, str], rng: Random
) -> None:
    items = list(values.items())
    shuffled = list(items)
    rng.shuffle(shuffled)

    first, second = Dimensions(items), Dimensions(shuffled)

    assert first == second
    assert first.key == second.key
    assert hash(first) == hash(second)


@given(dimension_maps)
@settings(max_examples=100)
def test_dimensions_from_key_round_trips(values: dict[str, str]) -> None:
    dimensions = Dimensions(values.items())

    rebuilt = Dimensions.from_key(dimensions.key)

    assert rebuilt == dimensions
    assert rebuilt.as_dict() == values
    assert list(rebuilt) == list(dimensions)


@given(dimension_maps, dimension_maps)
@settings(max_examples=100)
def test_dimensions_keys_differ_when_the_dimensions_differ(
    first: dict[str, str], second: dict[str, str]
) -> None:
    assert (Dimensions(first.items()).key == Dimensions(second.items()).key) == (first == second)


def test_resolve_dimensions_matches_names_case_insensitively_in_canonical_spelling() -> None:
    dimensions = resolve({"SITEID": "1", "locationid": "11", "ColorId": "Red"})

    assert dimensions.as_dict() == {"siteId": "1", "locationId": "11", "colorId": "Red"}


def test_resolve_dimensions_orders_names_by_the_base_dimensions() -> None:
    dimensions = resolve({"sizeId": "M", "batchId": "B7", "siteId": "1", "colorId": "red"})

    assert list(dimensions) == ["siteId", "colorId", "sizeId", "batchId"]


@given(dimension_maps.filter(bool), st.data())
@settings(max_examples=100)
def test_resolve_dimensions_accepts_any_casing_of_base_names(
    values: dict[str, str], data: st.DataObject
) -> None:
    raw = {data.draw(casings)(name): value for name, value in values.items()}

    dimensions = default_configuration().resolve_dimensions(raw, LOCATION)

    assert dimensions == Dimensions(values.items())
    assert list(dimensions) == [name for name in BASE_DIMENSIONS if name in dimensions]


def test_resolve_dimensions_translates_a_data_source_s_own_dimension_names() -> None:
    configuration = pos_store_configuration()

    dimensions = configuration.resolve_dimensions(
        {"STORE": "1", "aisle": "11", "colorId": "red"}, LOCATION, data_source="pos"
    )

    assert dimensions.as_dict() == {"siteId": "1", "locationId": "11", "colorId": "red"}


def test_resolve_dimensions_still_accepts_base_names_alongside_a_data_source_mapping() -> None:
    configuration = pos_store_configuration()

    dimensions = configuration.resolve_dimensions(
        {"store": "1", "locationId": "11"}, LOCATION, data_source="pos", require_partition=True
    )

    assert dimensions.as_dict() == {"siteId": "1", "locationId": "11"}


def test_resolve_dimensions_uses_a_mapping_only_for_its_own_data_source() -> None:
    configuration = pos_store_configuration()

    assert refusal({"store": "1"}, configuration).code == "unknown-dimension"
    assert refusal({"store": "1"}, configuration, data_source="fno").code == "unknown-dimension"


def test_resolve_dimensions_refuses_an_unknown_dimension_naming_it() -> None:
    error = refusal({"siteId": "1", "shelf": "top"})

    assert error.code == "unknown-dimension"
    assert [issue.path for issue in error.issues] == ["dimensions.shelf"]
    assert "shelf" in error.detail


def test_resolve_dimensions_requires_the_partition_dimensions_when_asked() -> None:
    error = refusal({"siteId": "1", "colorId": "red"}, require_partition=True)

    assert error.code == "missing-partition-dimension"
    assert "locationId" in error.detail
    assert [issue.path for issue in error.issues] == ["dimensions"]


def test_resolve_dimensions_does_not_require_partition_dimensions_by_default() -> None:
    assert resolve({"colorId": "red"}).as_dict() == {"colorId": "red"}


@pytest.mark.parametrize(
    "value", ["", "a\nb", "\x00", "tab\there", "zero\u200bwidth", "\x7f", 5, None, ["1"]]
)
def test_resolve_dimensions_refuses_empty_non_text_and_control_character_values(
    value: object,
) -> None:
    error = refusal({"siteId": "1", "colorId": value})

    assert error.code == "invalid-dimensions"
    assert [issue.path for issue in error.issues] == ["dimensions.colorId"]


def test_resolve_dimensions_accepts_values_up_to_the_maximum_length_only() -> None:
    longest = "x" * MAX_DIMENSION_VALUE_LENGTH

    assert resolve({"colorId": longest})["colorId"] == longest
    assert refusal({"colorId": longest + "x"}).code == "invalid-dimensions"


def test_resolve_dimensions_refuses_the_same_dimension_twice_with_different_values() -> None:
    error = refusal({"siteId": "1", "SITEID": "2"})

    assert error.code == "invalid-dimensions"
    assert "twice" in error.detail


def test_resolve_dimensions_refuses_a_mapped_name_and_its_base_name_with_different_values() -> None:
    error = refusal({"store": "1", "siteId": "2"}, pos_store_configuration(), data_source="pos")

    assert error.code == "invalid-dimensions"


def test_resolve_dimensions_accepts_the_same_dimension_twice_with_the_same_value() -> None:
    assert resolve({"siteId": "1", "SiteId": "1"}).as_dict() == {"siteId": "1"}


def test_resolve_dimensions_reports_every_problem_at_once() -> None:
    error = refusal({"shelf": "top", "colorId": ""}, require_partition=True)

    paths = [issue.path for issue in error.issues]
    assert paths == ["dimensions.shelf", "dimensions.colorId", "dimensions"]


@pytest.mark.parametrize("raw", [None, "siteId=1", [("siteId", "1")]])
def test_resolve_dimensions_refuses_anything_but_an_object(raw: object) -> None:
    assert refusal(raw).code == "invalid-dimensions"


def test_a_request_with_too_many_dimensions_is_refused_before_reading_them() -> None:
    raw = {f"custom{n}": "x" for n in range(MAX_DIMENSIONS + 1)}

    with pytest.raises(Invalid) as refused:
        default_configuration().resolve_dimensions(raw, ("dimensions",))

    assert refused.value.code == "invalid-dimensions"
    assert len(refused.value.issues) == 1


@given(st.text(max_size=20))
@settings(max_examples=500)
def test_text_is_refused_exactly_when_a_character_is_of_category_c(text: str) -> None:
    has_control = any(unicodedata.category(char).startswith("C") for char in text)
    if text and not has_control:
        assert check_text(text, LOCATION, max_length=100, what="a value") == text
    else:
        with pytest.raises(Invalid) as refused:
            check_text(text, LOCATION, max_length=100, what="a value")
        assert refused.value.code == "invalid-identifier"


@pytest.mark.parametrize(
    "text",
    ["tab\there", "nul\x00", "soft\xadhyphen", "zero\u200bwidth", "lone\ud800", "private\ue000"],
)
def test_control_format_surrogate_and_private_characters_are_refused(text: str) -> None:
    with pytest.raises(Invalid, match="control characters"):
        check_text(text, LOCATION, max_length=100, what="a value")


@pytest.mark.parametrize("text", ["no\xa0break", "ideographic\u3000space", "line\u2028sep"])
def test_separators_other_than_the_space_are_allowed(text: str) -> None:
    assert check_text(text, LOCATION, max_length=100, what="a value") == text
