"""Daily reception statistics (``EstadisticasRecepcion``): counted in memory, added up in MongoDB.

``tally`` counts (pure, ``now`` an argument), ``histogram`` holds latency
distributions as fixed buckets that add up across instances, ``writer`` turns
a tally into idempotent ``$inc`` upserts, ``collector`` is the running part
that the drivers, persistence and the bus feed, and ``report`` reads the
documents back into the daily table.
"""
