"""The pseudonymisation key as a resource: read from the environment when an asset needs it, never
stored in Dagster's run configuration or event log."""

import dagster as dg

from medlake.deid.keys import DeidKeys


class SecretKeyResource(dg.ConfigurableResource):
    """MEDLAKE_SECRET_KEY (see the README); the resource carries no value of its own."""

    def deid_keys(self) -> DeidKeys:
        return DeidKeys.from_env()
