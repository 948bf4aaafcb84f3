"""The workbench's warning pages (next commit)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
