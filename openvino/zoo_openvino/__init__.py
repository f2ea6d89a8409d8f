"""zoo-openvino: the ``openvino`` runtime for zoo exports, shipped as a third party would ship one."""

__version__ = "0.1.0"
