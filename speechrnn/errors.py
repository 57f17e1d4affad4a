"""The one exception type for problems a user can cause and fix."""


class SpeechRNNError(Exception):
    """Bad input, missing data, corrupt files: the message names the file and the fix."""


class AudioError(SpeechRNNError):
    """An audio file that cannot be used; ``path`` is the offending file."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
