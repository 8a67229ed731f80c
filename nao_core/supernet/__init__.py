"""Weight-sharing supernets: one network, every architecture of a space (nao-spec §4).

``CnnSupernet`` is NAO_V1's ``NASWSNetworkCIFAR`` for the "cnn" space; ``forward(x, arch,
bn_batch_stats)`` runs the sub-network of one sampled architecture.
"""

from nao_core.supernet.cnn import WSBN, CnnSupernet
from nao_core.supernet.rnn import RnnSupernet

__all__ = ["WSBN", "CnnSupernet", "RnnSupernet"]
