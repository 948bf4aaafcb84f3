"""UI strings of the workbench's alarm and warning pages (keys start with ``wb_al_`` and
``wb_wa_``). Merged into :data:`cityops.web.i18n.STRINGS`."""

from __future__ import annotations

WORKBENCH_ALERT_STRINGS: dict[str, dict[str, str]] = {}
