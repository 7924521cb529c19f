"""The typed exceptions a reprolab user sees.

Every error names the offending value and the fix, so the CLI can print it on one line:
``error: unknown study 'zclp' (did you mean 'zclip'?) -- fix: run `reprolab list` to see the names``.
"""

from __future__ import annotations


class ReprolabError(Exception):
    """Base class: ``message`` says what was wrong, ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} -- fix: {self.fix}" if self.fix else self.message


class UnknownName(ReprolabError, KeyError):
    """A study, benchmark or asset name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        super().__init__(
            f"unknown {kind} {name!r}{hint}",
            fix=f"use one of: {', '.join(sorted(known)) or '(none registered)'}",
        )
        self.name = name

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.one_line()


class BadScale(ReprolabError, ValueError):
    def __init__(self, value: str):
        super().__init__(f"unknown scale {value!r}", fix="use --scale smoke, quick or full")
        self.value = value


class OutputNotWritable(ReprolabError, OSError):
    def __init__(self, path: str, reason: str):
        super().__init__(
            f"cannot write to output folder {path!r} ({reason})",
            fix="pass --out with a folder you can write to, or fix its permissions",
        )
        self.path = path


class DuplicateRegistration(ReprolabError, ValueError):
    def __init__(self, kind: str, name: str):
        super().__init__(
            f"{kind} {name!r} is registered twice",
            fix="give the new one another name; names are unique across reprolab",
        )


class ConfigError(ReprolabError, ValueError):
    """A configuration value out of its domain (e.g. ``ZClipConfig(alpha=1.5)``)."""

    def __init__(self, field: str, value: object, expected: str):
        super().__init__(f"invalid {field}={value!r}: expected {expected}", fix=f"set {field} to {expected}")
        self.field = field
        self.value = value


class NonFiniteError(ReprolabError, FloatingPointError):
    """A NaN or infinite value where the computation cannot continue honestly."""

    def __init__(self, what: str, value: object, fix: str | None = None):
        super().__init__(f"{what} is not finite ({value})", fix=fix)
        self.value = value


class StudyFailed(ReprolabError, RuntimeError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"study {name!r} failed: {reason}", fix="see the traceback above; the previous result, if any, is untouched")


class StudySkipped(ReprolabError):
    """Raised by a study that cannot run here (an optional asset or extra is missing).

    The run is recorded with the verdict ``not run`` and this reason; a skipped result is never
    reused. Everything a study may miss today is installed by ``make setup`` / ``make assets``
    (which ``make test`` runs first), so the smoke tests fail on a skip instead of passing.
    """


class AssetMissing(ReprolabError, FileNotFoundError):
    def __init__(self, name: str, fix: str = "make assets"):
        super().__init__(f"offline asset {name!r} is not installed", fix=fix)
        self.name = name


class MissingExtra(ReprolabError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"optional package {package!r} is not installed", fix=f"pip install 'reprolab[{extra}]'")
        self.package = package


class MalformedFile(ReprolabError, ValueError):
    """A file that is truncated, not in the expected format, or inconsistent with itself
    (e.g. a 3DGS ``.ply`` missing ``rot_3``, or with 17 ``f_rest_*`` properties)."""

    def __init__(self, path: str, problem: str, fix: str = "re-export the file with the tool that wrote it, or pass a file in the expected format"):
        super().__init__(f"{path}: {problem}", fix=fix)
        self.path = path
        self.problem = problem


class ShapeError(ReprolabError, ValueError):
    """A tensor or array whose shape (or dtype) is not the one the code expects."""

    def __init__(self, what: str, got: object, expected: str):
        super().__init__(f"{what} has shape {got}, expected {expected}", fix=f"pass {what} as {expected}")
        self.what = what
        self.got = got
