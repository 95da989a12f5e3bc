"""Operations telemetry: Prometheus metrics, structured logs and what Flower may show.

* :mod:`.metrics` defines every metric the processes update (names documented in the README);
* :mod:`.state` reads gauges from the database, Redis and the broker when Prometheus scrapes;
* :mod:`.exposition` serves ``/metrics`` (multiprocess-safe) for workers, beat and the HTTP apps;
* :mod:`.celery_hooks` connects the Celery signals that feed them (no code in the hot paths);
* :mod:`.events` masks what a worker reports to Flower; :mod:`.logs` is the JSON lines formatter.
"""
