"""kopf wiring only: each handler is a few lines that call into reconcile/ and aws/."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from retraining_operator.api import API_GROUP, API_VERSION, PLURAL

FINALIZER = f"{API_GROUP}/finalizer"
RESOURCE = (API_GROUP, API_VERSION, PLURAL)

_options: dict[str, Any] = {"metrics_port": 0, "peering": None}


def configure(*, metrics_port: int, peering: str | None) -> None:
    """Called by the runner before kopf starts; handlers read these in startup."""
    _options.update(metrics_port=metrics_port, peering=peering)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Progress lives in annotations so the status subresource holds only our own, bounded status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.peering.standalone = _options["peering"] is None
    logger.info("retraining operator starting (peering=%s)", _options["peering"] or "off")


@kopf.on.create(*RESOURCE)
@kopf.on.resume(*RESOURCE)
def policy_seen(name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    # kopf adds the finalizer before the first handler runs, so deletion always reaches us.
    logger.info("watching RetrainingPolicy %s/%s", namespace, name)


@kopf.on.delete(*RESOURCE)
def policy_deleted(name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    logger.info("RetrainingPolicy %s/%s deleted; finalizer released", namespace, name)
