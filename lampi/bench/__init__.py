"""``lampi bench``: a load generator for Swift endpoints, machine limits, and a
side-by-side run against a single-node OpenStack Swift.

Modules:

- :mod:`.util`     sizes, percentiles, machine facts
- :mod:`.auth`     Keystone v3 (OS_* env), v1 auth, or storage URL + token
- :mod:`.load`     the async aiohttp load generator (one or several client processes)
- :mod:`.rss`      server memory sampling (psutil, /proc fallback)
- :mod:`.limits`   sequential write+fsync, 4 KiB write+fsync rate, loopback TCP
- :mod:`.servers`  start/stop lampi and a single-node Swift (cache venv) on loopback
- :mod:`.runner`   phases, alternation between targets, the result document
- :mod:`.report`   rich tables (fitted to the terminal), ratios against the performance targets
"""
