"""Prefect orchestration for preserve: thin flows whose tasks call the library. Importing this
package switches Prefect's telemetry off for this process and the processes it starts (the
temporary API server, served runs), whatever the environment says: every flow module imports
Prefect only after this has run. Side effects: sets two environment variables."""

import os
from collections.abc import MutableMapping

#: Prefect's server heartbeat (sens-o-matic) and its SDK analytics, both off
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def telemetry_off(environ: MutableMapping[str, str]) -> None:
    """Switch Prefect's telemetry off in ``environ`` (read by Prefect once, when it is imported)."""
    environ.update(TELEMETRY_OFF)


telemetry_off(os.environ)
