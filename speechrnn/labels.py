"""Labels that are never keywords. Torch-free: the training data and the runtime share them."""

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
NOT_KEYWORDS = (SILENCE, UNKNOWN)  # the classes that are never a keyword
