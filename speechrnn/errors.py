"""The one exception type for problems a user can cause and fix."""


class SpeechRNNError(Exception):
    """Bad input, missing data, corrupt files: the message names the file and the fix."""


class UsageError(SpeechRNNError):
    """A setting or argument that is unknown, out of range or in conflict with the run: the
    command line is at fault. CLIs print it in one line and exit 2 (other errors exit 1)."""


class AudioError(SpeechRNNError):
    """An audio file that cannot be used; ``path`` is the offending file."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
