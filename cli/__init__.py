"""The ``nao`` command: the service's commands, and the method's from ``nao_core.cli``."""
