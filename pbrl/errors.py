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


def check_positive(field: str, value, allow_zero: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a number > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(field, f"got {value!r}; must be a number {bound}")
