"""The one place the service reads its environment: typed, validated, loud about mistakes.

What each variable is (type, defaults, bounds) is declared once in chatsite/config.py;
Env.setting(name) reads a declared one with its declared default.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from chatsite.config import DECLARED, RENAMED, REQUIRED, Ref

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingError(ImproperlyConfigured):
    """A variable is missing, malformed, or renamed; the message names it."""


class Env:
    """Typed reads of os.environ: env.str/bool/int/float/list/choice."""

    def __init__(self, environ=None):
        self.environ = os.environ if environ is None else environ

    def check_renamed(self):
        for old, new in RENAMED.items():
            if old in self.environ and new not in self.environ:
                raise SettingError(f"{old} was renamed to {new}: set {new} instead")

    def _raw(self, name, default):
        value = self.environ.get(name)
        if value is not None and value.startswith("!!!SET"):
            raise SettingError(f"{name} still holds the .env.example placeholder {value!r}: set it")
        if value is None or value == "":
            if default is REQUIRED:
                raise SettingError(f"{name} is required and has no default in production")
            return None
        return value

    def str(self, name, default=REQUIRED):
        value = self._raw(name, default)
        return default if value is None else value

    def bool(self, name, default=REQUIRED):
        value = self._raw(name, default)
        if value is None:
            return default
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise SettingError(f"{name} must be true or false, found {value!r}")

    def _number(self, kind, name, default, minimum):
        value = self._raw(name, default)
        if value is None:
            return default
        try:
            number = kind(value)
        except ValueError:
            raise SettingError(f"{name} must be a {kind.__name__}, found {value!r}") from None
        if minimum is not None and number < minimum:
            raise SettingError(f"{name} must be >= {minimum}, found {number}")
        return number

    def int(self, name, default=REQUIRED, minimum=None):
        return self._number(int, name, default, minimum)

    def float(self, name, default=REQUIRED, minimum=None):
        return self._number(float, name, default, minimum)

    def list(self, name, default=REQUIRED):
        """A comma-separated list, blanks dropped."""
        value = self._raw(name, default)
        if value is None:
            return [*default]
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name, choices, default=REQUIRED):
        value = self.str(name, default)
        if value not in choices:
            raise SettingError(f"{name} must be one of {', '.join(choices)}, found {value!r}")
        return value

    def setting(self, name, production=False):
        """The variable `name` as chatsite/config.py declares it, at this mode's default."""
        declared = DECLARED.get(name)
        if declared is None:
            raise LookupError(f"expected {name} declared in chatsite/config.py, found nothing")
        default = declared.default_in(production)
        if isinstance(default, Ref):
            default = self.setting(default.name, production)
        elif isinstance(default, str):
            default = default.replace("{BASE_DIR}", str(BASE_DIR))
        kind = declared.kind
        if kind == "choice":
            return self.choice(name, declared.choices, default=default)
        if kind in ("int", "float"):
            return getattr(self, kind)(name, default, minimum=declared.minimum)
        if kind == "list" and default is None:
            return None if self.str(name, None) is None else self.list(name)
        return getattr(self, kind)(name, default)


env = Env()
