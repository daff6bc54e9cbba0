"""The oracle's user-facing error."""


class OracleError(Exception):
    """A problem the user can fix (missing tool, no mirror, bad trace header).

    The commands print its text on one line and exit with status 2.
    """
