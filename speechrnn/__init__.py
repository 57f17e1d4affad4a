"""speechrnn: speech command recognition with recurrent encoders, exported to ONNX."""

__version__ = "0.1.0"
