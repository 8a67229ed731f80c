"""Job kinds: how a request becomes a job, which task runs it, how it is cancelled and how it
is recovered — one module per kind, listed in ``jobs.registry``. Torch-free and HTTP-free:
``api`` calls it to accept work, ``worker`` to recover it."""
