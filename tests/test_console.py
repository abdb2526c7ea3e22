"""Errors that libraries report and then ignore go to the log file, not the console."""

import gc
import logging
import sys

import pytest

from xmrc_jax import console


class _RaisesOnDelete:
    def __del__(self):
        raise RuntimeError("Event loop is closed")


@pytest.fixture
def routed(tmp_path, monkeypatch):
    """``keep_library_errors_in`` a file handler, undone after the test."""
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    monkeypatch.setattr(console, "_state", {"path": None, "expected": False, "noted": False,
                                            "count": 0})
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    loggers = [logging.getLogger(n) for n in ("asyncio", console.library_log.name)]
    saved = [(lg, lg.propagate, list(lg.handlers)) for lg in loggers]
    console.keep_library_errors_in(handler, str(path))
    yield path, handler
    for lg, propagate, handlers in saved:
        lg.propagate, lg.handlers = propagate, handlers
    handler.close()


def test_an_ignored_error_goes_to_the_log_file_with_one_console_line(routed, caplog, capfd):
    path, handler = routed
    with caplog.at_level(logging.WARNING, logger="xmrc_jax"):
        for _ in range(3):
            _RaisesOnDelete()
            gc.collect()
        logging.getLogger("asyncio").error("Task exception was never retrieved")
    handler.flush()
    text = path.read_text()
    assert text.count("Traceback") == 3 and text.count("RuntimeError: Event loop is closed") == 3
    assert "Task exception was never retrieved" in text
    notices = [r.getMessage() for r in caplog.records if r.name == "xmrc_jax"]
    assert notices == [f"a library reported an error it then ignored; its traceback is in {path}"]
    assert "Traceback" not in capfd.readouterr().err
    assert console.ignored_count() == 4


def test_expected_library_errors_need_no_notice(routed, caplog):
    path, handler = routed
    console.expect_library_errors()
    with caplog.at_level(logging.WARNING, logger="xmrc_jax"):
        _RaisesOnDelete()
        gc.collect()
    handler.flush()
    assert "Event loop is closed" in path.read_text()
    assert not [r for r in caplog.records if r.name == "xmrc_jax"]
