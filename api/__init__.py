"""The tenants' door: the HexaVox HTTP API under ``/api/v1`` (seed 003), served by ``hexavox api``.

A thin layer over the same runner and policy functions the intake queue uses: it authenticates the key from the
X-API-KEY / X-API-SECRET headers, enforces the key's IP allowlist and request rate, maps the seed's HTTP shapes onto
the queue contract, and answers catalogue codes with HTTP statuses from one table (:mod:`api.status`). The app
factory is :func:`api.app.create_app`; the endpoints are the table in :mod:`api.endpoints`.
"""
