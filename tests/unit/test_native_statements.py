"""Statements kept in PostgreSQL's own placeholders (the batch statements' form)."""

from __future__ import annotations

import pytest

from ringfence.storage.repositories import NativeStatement


def test_each_name_is_one_numbered_parameter_in_order_of_first_use() -> None:
    statement = NativeStatement.of(
        "SELECT %(b)s::text IS NULL OR x = %(b)s::text, %(a)s, y LIKE 'a%%' FROM t WHERE z = %(c)s"
    )
    assert statement.sql == (
        b"SELECT $1::text IS NULL OR x = $1::text, $2, y LIKE 'a%' FROM t WHERE z = $3"
    )
    assert statement.names == ("b", "a", "c")
    assert statement.values({"a": 1, "b": "two", "c": None, "unused": 4}) == ["two", 1, None]


def test_a_missing_value_is_an_error_not_a_null() -> None:
    with pytest.raises(KeyError, match="c"):
        NativeStatement.of("SELECT %(c)s").values({})


@pytest.mark.parametrize("sql", ["SELECT %s", "SELECT 5 % 2", "SELECT %(a)d"])
def test_other_placeholders_and_bare_percent_signs_are_refused(sql: str) -> None:
    with pytest.raises(ValueError, match=r"%\(name\)s"):
        NativeStatement.of(sql)
