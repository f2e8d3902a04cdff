"""Several WayGPS instances on one MongoDB replica set (docs/scaling.md).

* :mod:`~waygps.cluster.changes`: change-stream documents back into events (sans-IO);
* :mod:`~waygps.cluster.follower`: the change stream, in a thread, resumed from its token;
* :mod:`~waygps.cluster.lease`: one heartbeat document per instance, and what expiry does;
* :mod:`~waygps.cluster.takeover`: which instance holds a device now;
* :mod:`~waygps.cluster.alarms`: alarms stored where every instance sees them;
* :mod:`~waygps.cluster.proxy`: the PROXY protocol (v1, v2) in front of device listeners;
* :mod:`~waygps.cluster.service`: the part of the server that ties them together.
"""
