"""NAO core: search spaces, the encoder-predictor-decoder controller and search strategies.

This package never imports ``api`` or ``worker``. Importing it does not import torch; the
modules that need torch (controller, supernets, training) import it themselves.
"""

from nao_core.search_space import create_search_space, list_search_spaces

__all__ = ["create_search_space", "list_search_spaces"]
