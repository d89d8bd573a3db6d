"""The reliability tier (`scripts/test reliability`): issue 7's longest fault scenarios on a
compose stack like the stack tier's. It is the last tier of the default `scripts/test` run; a
tier of its own because it takes minutes and measures timing on a 2-core machine
(docs/RELIABILITY.md)."""

from tests.stack.conftest import stack  # noqa: F401 - the session fixture, reused
