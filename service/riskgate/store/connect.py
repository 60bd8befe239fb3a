"""The Redis client of a URL: a plain Redis (`redis://`, `rediss://`, `unix://`) or a Redis
Cluster (`redis+cluster://host:port`, `rediss+cluster://...`: any node of the cluster; the
client learns the others and the slot map from it).

Every script and MULTI riskgate sends names keys of one hash tag (store/keys.py), so on a
cluster each goes whole to the node that owns its slot; the change subscription is a plain
connection to the node of the channel's slot (Redis 6.2 and later deliver a PUBLISH from any
node to subscribers on every node), reopened, on the new owner, after a failover.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client of `url`; options (socket timeouts) go to either kind. Typed as the plain
    client: the cluster client answers the same commands riskgate sends."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if plain is None:
        return aioredis.Redis.from_url(url, **options)
    # A cluster has no databases but 0: drop a "/0" path rather than refuse it.
    address = rest.split("/", 1)[0]
    # Asks the slot map again at once on MOVED (a failover), rather than after several.
    return RedisCluster.from_url(f"{plain}{sep}{address}", reinitialize_steps=1,  # type: ignore[return-value]
                                 **options)
