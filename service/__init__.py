"""The REST service: FastAPI app (``service.app.create_app``), database, auth, job queue and ``metarec worker``.

Layer: may import every other metarec package; never imports hpbandster at import time (the rebuild
job imports ``offline_search`` lazily inside the worker).
"""
