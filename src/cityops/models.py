"""Every domain's models, imported so ``Base.metadata`` is complete (Alembic, tests)."""

from cityops.auth import models as auth_models
from cityops.catalog import models as catalog_models
from cityops.db import Base
from cityops.events import models as event_models
from cityops.geo import models as geo_models
from cityops.notify import models as notify_models
from cityops.org import models as org_models

__all__ = [
    "Base",
    "auth_models",
    "catalog_models",
    "event_models",
    "geo_models",
    "notify_models",
    "org_models",
]
