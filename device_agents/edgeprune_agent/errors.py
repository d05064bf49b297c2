"""Exceptions raised by the device agent."""


class AgentError(Exception):
    """Base class for errors the agent reports to its callers."""


class ModelInvalid(AgentError):
    """The model bytes cannot be loaded or run by the chosen runtime."""


class RuntimeUnavailable(AgentError):
    """The requested inference runtime is not installed on this device."""


class SensorUnavailable(AgentError):
    """The requested energy sensor is absent or cannot be read."""
