"""One exception type for problems the user can fix (bad input, bad params).

Stages turn it into a one-line message and a non-zero exit (see `pipeline.common.cli`);
anything else is a bug and keeps its traceback.
"""


class FacecycleError(Exception):
    """A user-facing error: the message names the file or param at fault."""
