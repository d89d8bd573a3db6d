"""docs/protocol.md is the reader's copy of chat/protocol.py; they must not drift apart."""

from pathlib import Path

from chat import protocol

DOC = (Path(__file__).resolve().parents[4] / "docs" / "protocol.md").read_text()


def test_every_error_code_is_documented():
    for code in protocol.ERRORS:
        assert f"| `{code}` |" in DOC, code


def test_every_close_code_is_documented():
    for code in protocol.CLOSE_CODES:
        assert f"| {code} |" in DOC, code
