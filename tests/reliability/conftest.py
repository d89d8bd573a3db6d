"""The reliability tier (`scripts/test reliability`): issue 7's longest fault scenarios on the
same compose stack as the container tier, kept out of the default run because they take
minutes and some measure timing on a 2-core machine (docs/RELIABILITY.md)."""

from tests.stack.conftest import stack  # noqa: F401 - the session fixture, reused
