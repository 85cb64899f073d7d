"""The one exception type that the command line turns into a one-line error."""


class ConfigError(ValueError):
    """A configuration value is invalid.

    ``field`` is the dotted config key (``env.id``, ``steps``), and the message says what is
    allowed; ``pbrl-train`` prints ``error: <field>: <message>`` and exits with status 2.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_choice(field: str, value, allowed) -> None:
    """Raise ConfigError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(field, f"got {value!r}; allowed: {', '.join(map(str, allowed))}")


def check_int(field: str, value, minimum: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(field, f"got {value!r}; must be an integer{bound}")
