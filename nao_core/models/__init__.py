"""Stand-alone networks compiled from one architecture, for final training (nao-spec §6).

``CnnNetwork`` is NAO_V1's ``NASNetworkCIFAR`` for the "cnn" and "cnn-large" spaces; its ops
come from the single name -> factory table ``OPS`` in ``nao_core.models.ops``. ``RnnNetwork`` is the
recurrent language model of the "rnn" space (nao-spec §1c, §6.4).
"""

from nao_core.models.cnn import AuxHead, CnnNetwork, count_flops, count_parameters
from nao_core.models.ops import OPS, FactorizedReduce, MaybeCalibrateSize, drop_path, space_ops
from nao_core.models.rnn import RnnDropouts, RnnNetwork

__all__ = [
    "OPS",
    "AuxHead",
    "CnnNetwork",
    "FactorizedReduce",
    "MaybeCalibrateSize",
    "RnnDropouts",
    "RnnNetwork",
    "count_flops",
    "count_parameters",
    "drop_path",
    "space_ops",
]
