"""Every domain's models, imported so ``Base.metadata`` is complete (Alembic, tests)."""

from cityops.alarms import models as alarm_models
from cityops.auth import models as auth_models
from cityops.catalog import models as catalog_models
from cityops.cockpit import models as cockpit_models
from cityops.db import Base
from cityops.events import models as event_models
from cityops.geo import models as geo_models
from cityops.live import models as live_models
from cityops.notify import models as notify_models
from cityops.org import models as org_models
from cityops.telemetry import models as telemetry_models
from cityops.warning import models as warning_models

__all__ = [
    "Base",
    "alarm_models",
    "auth_models",
    "catalog_models",
    "cockpit_models",
    "event_models",
    "geo_models",
    "live_models",
    "notify_models",
    "org_models",
    "telemetry_models",
    "warning_models",
]
