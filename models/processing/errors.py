"""Errors raised by the processing pipeline; servers map them to 4xx answers."""


class ProcessingError(ValueError):
    """Base class: the input cannot be processed (the client's fault, not ours)."""


class ImageDecodeError(ProcessingError):
    """The bytes are empty, truncated, corrupt or not an image format we accept."""


class ImageTooLargeError(ProcessingError):
    """The image has more pixels than the configured limit (decompression bomb guard)."""
