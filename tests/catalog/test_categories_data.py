"""Schema checks for the default case-category catalogue (catalog/data/categories.yaml)."""

from __future__ import annotations

import csv
import io
import re
from functools import cache
from importlib import resources
from typing import Any

import pytest
import yaml

REQUIRED_CLASSES = {
    "市容环境",
    "宣传广告",
    "施工管理",
    "街面秩序",
    "突发事件",
    "公用设施",
    "道路交通",
    "园林绿化",
    "房屋土地",
    "地质灾害",
    "防汛",
    "森林防火",
    "安全生产",
    "消防",
}
EMERGENCY_LINES = {"地质灾害", "防汛", "森林防火", "消防"}
KINDS = {"event", "component"}
CLOCKS = {"working", "natural"}
LEAF_KEYS = {"code", "name", "kind", "owner", "clock", "limits", "keywords"}
REQUIRED_LEAF_KEYS = LEAF_KEYS - {"kind"}


@cache
def catalogue() -> dict[str, Any]:
    text = resources.files("cityops.catalog").joinpath("data/categories.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@cache
def department_short_names() -> frozenset[str]:
    text = (
        resources.files("cityops.demo").joinpath("data/district_departments.csv").read_text("utf-8")
    )
    return frozenset(row["short"] for row in csv.DictReader(io.StringIO(text)))


def classes() -> list[dict[str, Any]]:
    return catalogue()["classes"]


def leaves() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (big class, category) pair in file order."""
    return [(cls, leaf) for cls in classes() for leaf in cls["categories"]]


def leaf_id(pair: tuple[dict[str, Any], dict[str, Any]]) -> str:
    return str(pair[1].get("code"))


def test_header() -> None:
    data = catalogue()
    assert set(data) == {"version", "note", "classes"}
    assert data["version"] == 1
    assert isinstance(data["note"], str) and data["note"].strip()
    assert "\n" not in data["note"].strip()


def test_class_codes_and_names_are_unique() -> None:
    codes = [cls["code"] for cls in classes()]
    assert all(isinstance(c, str) and re.fullmatch(r"[A-Z]{2}", c) for c in codes), codes
    assert len(codes) == len(set(codes))
    names = [cls["name"] for cls in classes()]
    assert len(names) == len(set(names))


def test_every_class_is_well_formed() -> None:
    for cls in classes():
        assert set(cls) == {"code", "name", "kind", "categories"}, cls["code"]
        assert isinstance(cls["name"], str) and cls["name"].strip(), cls["code"]
        assert cls["kind"] in KINDS, cls["code"]
        assert isinstance(cls["categories"], list) and cls["categories"], cls["code"]


def test_required_classes_are_present() -> None:
    missing = REQUIRED_CLASSES - {cls["name"] for cls in classes()}
    assert not missing, missing


def test_both_kinds_are_present() -> None:
    assert {cls["kind"] for cls in classes()} == KINDS


def test_category_codes_are_unique_and_prefixed_by_their_class() -> None:
    codes = []
    for cls, leaf in leaves():
        code = leaf["code"]
        assert isinstance(code, str) and re.fullmatch(r"[A-Z]{2}\d{2}", code), code
        assert code[:2] == cls["code"], code
        codes.append(code)
    assert len(codes) == len(set(codes))


def test_at_least_sixty_leaves() -> None:
    assert len(leaves()) >= 60


def test_names_are_unique_within_a_class() -> None:
    for cls in classes():
        names = [leaf["name"] for leaf in cls["categories"]]
        assert all(isinstance(n, str) and n.strip() for n in names), cls["code"]
        assert len(names) == len(set(names)), cls["code"]


@pytest.mark.parametrize("pair", leaves(), ids=leaf_id)
def test_leaf(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _cls, leaf = pair
    assert REQUIRED_LEAF_KEYS <= set(leaf) <= LEAF_KEYS
    assert leaf.get("kind", "event") in KINDS
    assert leaf["owner"] is None or leaf["owner"] in department_short_names()
    assert leaf["clock"] in CLOCKS

    limits = leaf["limits"]
    assert isinstance(limits, dict) and set(limits) == {"urgent", "normal"}
    for hours in limits.values():
        assert isinstance(hours, int | float) and not isinstance(hours, bool)
        assert hours > 0
    assert limits["urgent"] < limits["normal"]

    keywords = leaf["keywords"]
    assert isinstance(keywords, list) and 2 <= len(keywords) <= 6
    assert all(isinstance(k, str) and k.strip() for k in keywords)
    assert len(keywords) == len(set(keywords))


def test_emergency_lines_count_natural_hours() -> None:
    for cls, leaf in leaves():
        if cls["name"] in EMERGENCY_LINES:
            assert leaf["clock"] == "natural", leaf["code"]
