"""The cockpit's daily roll-up of cases (see ``cityops.cockpit.rollup``): counts per region at
every level, so a district's or a town's 30 days are a few hundred rows, not a month of cases.

A row's ``region_code`` is a district, town, village or grid code and counts every case located
there or anywhere below it (a case in a grid counts in its grid's, village's, town's and
district's rows); ``day`` is the local day (Asia/Shanghai) of the case's report or of the event.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base


class DailyIntake(Base):
    """Cases reported, per region × day × source × current category (0: not classified)."""

    __tablename__ = "cockpit_daily_intake"

    region_code: Mapped[str] = mapped_column(String(15), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    category_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cases: Mapped[int] = mapped_column(Integer)


class DailyClosures(Base):
    """The evaluation's counts behind the closure rates, per region × day of the event:
    dispatched (dispatch or self-handling), closed (verify_ok) and closed on time (a verify_ok
    marked positive). ``region_code`` "" counts every case, wherever it lies."""

    __tablename__ = "cockpit_daily_closures"

    region_code: Mapped[str] = mapped_column(String(15), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dispatched: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    closed_on_time: Mapped[int] = mapped_column(Integer)
