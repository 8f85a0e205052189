"""How messages name an error: its type and its message's first line, never a traceback."""

from jobs.words import error_line, first_line


def test_the_first_line_that_says_something_clipped_with_an_ellipsis():
    assert first_line("\n  \n  disk full  \nTraceback (most recent call last):") == "disk full"
    assert first_line("x" * 300, 10) == "x" * 9 + "…"
    assert first_line("") == ""


def test_an_error_is_its_type_and_first_line():
    assert error_line(OSError(28, "No space left on device")) == "OSError: [Errno 28] No space left on device"
    assert error_line(KeyboardInterrupt()) == "KeyboardInterrupt"
