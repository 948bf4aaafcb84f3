from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box, mapping
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.geo import service
from cityops.geo.importer import ImportRejected, import_geojson
from cityops.geo.models import Region
from tests.cliutil import invoke_cli

# A new town carved out of nothing would overlap the demo towns, so tests import into a second,
# made-up district far from Kaizhou (code 500155) unless they mean to collide.
OTHER = "500155"


def feature(code: str, name: str, geom: dict[str, Any] | Any) -> dict[str, Any]:
    g = geom if isinstance(geom, dict) else mapping(geom)
    return {"type": "Feature", "properties": {"code": code, "name": name}, "geometry": g}


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def good_district() -> list[dict[str, Any]]:
    return [
        feature(OTHER, "测试区", box(100.0, 30.0, 100.2, 30.2)),
        feature(f"{OTHER}001", "东镇", box(100.1, 30.0, 100.2, 30.2)),
        feature(f"{OTHER}002", "西镇", box(100.0, 30.0, 100.1, 30.2)),
        feature(f"{OTHER}001001", "东村", box(100.1, 30.0, 100.2, 30.1)),
    ]


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Region)) or 0


def problems_of(session: Session, data: Any) -> list[tuple[str, str]]:
    before = count(session)
    with pytest.raises(ImportRejected) as info:
        import_geojson(session, data)
    assert count(session) == before, "nothing may be half-imported"
    return [(p.code, p.message) for p in info.value.problems]


def test_good_import_creates_and_then_updates(session: Session) -> None:
    before = count(session)
    result = import_geojson(session, fc(*good_district()))
    assert (result.created, result.updated) == (4, 0)
    assert count(session) == before + 4
    village = service.get_region(session, f"{OTHER}001001")
    assert village.level == "village" and village.area_km2 == pytest.approx(111.3, rel=0.05)

    renamed = good_district()
    renamed[1]["properties"]["name"] = "东城镇"
    assert import_geojson(session, fc(*renamed)).updated == 4
    assert service.get_region(session, f"{OTHER}001").name == "东城镇"


def test_locator_sees_imported_regions(session: Session) -> None:
    assert service.get_locator(session).locate(100.15, 30.05) is None
    import_geojson(session, fc(*good_district()))
    found = service.get_locator(session).locate(100.15, 30.05)
    assert found is not None and found.finest.code == f"{OTHER}001001"


def test_every_problem_is_reported_with_its_code(session: Session) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[100, 30], [100.1, 30.1], [100.1, 30], [100, 30.1], [100, 30]]],
    }
    features = [
        *good_district(),
        feature(f"{OTHER}003", "自交镇", bowtie),
        feature(f"{OTHER}004", "压线镇", box(100.05, 30.05, 100.15, 30.15)),  # overlaps both towns
        feature(f"{OTHER}001002", "越界村", box(100.15, 30.1, 100.3, 30.2)),  # leaves its town
        feature(f"{OTHER}009001", "孤儿村", box(100.0, 30.0, 100.01, 30.01)),  # no parent
        feature("12345", "坏编码", box(0, 0, 1, 1)),
        feature(f"{OTHER}005", "", box(100.0, 30.0, 100.01, 30.01)),
        feature(f"{OTHER}006", "点", {"type": "Point", "coordinates": [100, 30]}),
        feature(f"{OTHER}007", "经纬颠倒", box(30.0, 100.0, 30.1, 100.1)),
        feature(f"{OTHER}001", "重复", box(100.1, 30.0, 100.2, 30.2)),
    ]
    problems = problems_of(session, fc(*features))
    by_code: dict[str, list[str]] = {}
    for code, message in problems:
        by_code.setdefault(code, []).append(message)
    assert "invalid polygon" in by_code[f"{OTHER}003"][0]
    assert "feature #9" in by_code and "6, 9, 12 or 15 digits" in by_code["feature #9"][0]
    assert "name" in by_code[f"{OTHER}005"][0]
    assert "Polygon or MultiPolygon" in by_code[f"{OTHER}006"][0]
    assert "WGS-84" in by_code[f"{OTHER}007"][0]
    assert "more than once" in by_code[f"{OTHER}001"][0]


def test_topology_problems(session: Session) -> None:
    features = [
        *good_district(),
        feature(f"{OTHER}003", "压线镇", box(100.05, 30.05, 100.15, 30.15)),
        feature(f"{OTHER}001002", "越界村", box(100.15, 30.1, 100.3, 30.2)),
        feature(f"{OTHER}009001", "孤儿村", box(100.0, 30.0, 100.01, 30.01)),
    ]
    problems = problems_of(session, fc(*features))
    text = "\n".join(f"{c}: {m}" for c, m in problems)
    assert f"{OTHER}001: overlaps its sibling {OTHER}003" in text
    assert f"{OTHER}002: overlaps its sibling {OTHER}003" in text
    assert f"{OTHER}001002: extends outside its parent {OTHER}001" in text
    assert f"{OTHER}009001: parent region {OTHER}009 is neither stored nor in the file" in text


def test_overlap_with_a_stored_sibling_is_caught(session: Session) -> None:
    hanfeng = service.get_region(session, "500154001")
    # A new town laid over the stored 汉丰街道.
    problems = problems_of(session, fc(feature("500154041", "新城镇", hanfeng.geometry)))
    assert ("500154001", "overlaps its sibling 500154041") in problems


@pytest.mark.parametrize(
    "data",
    [[], {"type": "Feature"}, {"type": "FeatureCollection", "features": []}, "not json at all"],
)
def test_not_a_feature_collection(session: Session, data: Any) -> None:
    assert problems_of(session, data)[0][0] == "-"


def test_cli_import_reports_problems_and_exits_2(tmp_path: Path, tmp_db: str) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            fc(
                feature("500155", "测试区", box(100, 30, 100.2, 30.2)),
                feature("500155001", "越界镇", box(100.1, 30.1, 100.5, 30.5)),
            )
        )
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(*args, env={"CITYOPS_DATABASE_URL": tmp_db})

    assert run("db", "upgrade").returncode == 0
    result = run("regions", "import", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "500155001" in result.stderr and "extends outside its parent 500155" in result.stderr
    assert "Traceback" not in result.stderr

    good = tmp_path / "good.geojson"
    good.write_text(json.dumps(fc(*good_district()), ensure_ascii=False))
    ok = run("regions", "import", str(good))
    assert ok.returncode == 0 and "4 created" in ok.stdout
