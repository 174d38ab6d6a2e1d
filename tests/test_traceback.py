"""EventCore errors in IPython read as one line plus the user's own frames (eventcore._traceback).

A learner's refused transfer used to show a 6-87-line traceback through ``execution.py`` and
``pipeline.py``. IPython now shows ``Type: message`` and the cell lines that led there;
outside IPython, Python's own traceback stays complete.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator

import pytest

from eventcore import InMemoryEventStore, StoreFailure, execute
from eventcore._traceback import render_traceback, user_frames
from eventcore.examples.bank import InsufficientFunds, OpenAccount, Withdraw

IPython = pytest.importorskip("IPython")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(lines: list[str]) -> list[str]:
    return [ANSI.sub("", line) for line in lines]


def refuse() -> InsufficientFunds:
    store = InMemoryEventStore()
    execute(store, OpenAccount(account="account-a", owner="A"))
    try:
        execute(store, Withdraw(account="account-a", amount=5))
    except InsufficientFunds as error:
        return error
    raise AssertionError("the withdrawal was not refused")


@pytest.fixture
def shell() -> Iterator[object]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell(
        "from eventcore import InMemoryEventStore, execute\n"
        "from eventcore.examples.bank import OpenAccount, Withdraw\n"
        "store = InMemoryEventStore()\n"
        "execute(store, OpenAccount(account='account-a', owner='A'));\n"
    )
    yield shell
    shell.reset()


def test_a_notebook_shows_the_error_and_the_cell_line_only(
    shell: object, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    result = shell.run_cell(  # type: ignore[attr-defined]
        "def withdraw():\n    execute(store, Withdraw(account='account-a', amount=5))\nwithdraw()\n"
    )
    assert isinstance(result.error_in_exec, InsufficientFunds)
    shown = plain(capsys.readouterr().out.strip().splitlines())
    assert shown[0] == "InsufficientFunds: account-a holds 0, cannot withdraw 5"
    assert [re.sub(r"In\[\d+\]", "In[n]", line) for line in shown[1:]] == [
        "  Cell In[n], line 3: withdraw()",
        "  Cell In[n], line 2: execute(store, Withdraw(account='account-a', amount=5))",
    ]
    assert not any("execution.py" in line or "pipeline.py" in line for line in shown)


def test_other_errors_keep_ipythons_traceback(
    shell: object, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    shell.run_cell("1 / 0")  # type: ignore[attr-defined]
    assert "Traceback (most recent call last)" in plain([capsys.readouterr().out])[0]


def test_outside_ipython_the_python_traceback_stays_complete() -> None:
    text = "".join(traceback.format_exception(refuse()))
    assert "execution.py" in text and "pipeline.py" in text
    assert text.rstrip().endswith("InsufficientFunds: account-a holds 0, cannot withdraw 5")


def test_library_frames_are_hidden_and_the_callers_are_kept() -> None:
    error = refuse()
    frames = user_frames(error)
    assert [(where.endswith("test_traceback.py"), line) for where, _, line in frames] == [
        (True, 'execute(store, Withdraw(account="account-a", amount=5))')
    ]
    lines = plain(render_traceback(error))
    assert lines[0] == "InsufficientFunds: account-a holds 0, cannot withdraw 5"
    assert len(lines) == 2 and "test_traceback.py, line" in lines[1]


def test_the_cause_of_a_store_failure_is_named() -> None:
    try:
        try:
            raise ConnectionResetError("the server closed the connection")
        except ConnectionResetError as driver:
            raise StoreFailure("append", "the database went away") from driver
    except StoreFailure as error:
        lines = plain(error._render_traceback_())
    assert lines[:2] == [
        "StoreFailure: append failed: the database went away",
        "  caused by builtins.ConnectionResetError: the server closed the connection",
    ]


def test_the_full_traceback_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTCORE_FULL_TRACEBACK", "1")
    lines = refuse()._render_traceback_()
    assert lines[0] == "Traceback (most recent call last):"
    assert any("execution.py" in line for line in lines)
