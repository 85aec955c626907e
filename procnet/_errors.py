"""procnet's exceptions."""


class ProcNetError(Exception):
    """Base class of every error procnet raises on purpose."""


class ProcRootError(ProcNetError, OSError):
    """proc_root is missing, not a directory, or not laid out like /proc.

    An OSError too: ``errno``, ``strerror`` and ``filename`` say what and where.
    """


class BackendUnavailable(ProcNetError):
    """The backend asked for cannot run here (e.g. 'native' was not built)."""
