"""The service core every door shares: the model, its worker, a request's run, the metrics.

The HTTP API (``api/``), the Wyoming server (``wyoming/``) and the durable jobs (``jobs/``)
are layers over this core and never over each other. It knows nothing of any door's wire
shape: :mod:`.model_service` loads the model and admits work on its scheduler,
:mod:`.runner` runs one request's pipeline on a thread of its own, :mod:`.transcribe` is the
pipeline's calling convention, :mod:`.errors` says why something failed in the core's own
words (each door maps them to its shape), :mod:`.metrics` is the one registry every door
writes to, :mod:`.spool` the server's upload folder and :mod:`.context` what a door is given.
"""
