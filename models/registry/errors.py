"""Errors of the registry format; the serving side maps them to its own hierarchy."""


class RegistryFormatError(ValueError):
    """A registry file (``aliases.json``, ``card.json``) is missing or invalid."""


class MalformedReference(ValueError):
    """A model reference is not ``name``, ``name@alias`` or ``name:version``."""
