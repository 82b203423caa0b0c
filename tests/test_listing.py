"""Equation beside code: notes land on the lines holding their fragments; a stale note is an error."""
import pytest

from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.listing import annotated_source


def _example(a, b):
    total = a + b          # the sum
    return total * 2 < 3


def test_notes_sit_beside_their_lines_in_text_and_html():
    listing = annotated_source(_example, {"a + b": r"$s = a + b$", "total * 2": "twice, compared"})
    text = str(listing).split("\n")
    assert text[1].endswith("# <- $s = a + b$") and text[2].endswith("# <- twice, compared")
    assert "# <-" not in text[0]
    page = listing._repr_html_()
    assert page.count("background:#fff3c4") == 2 and "$s = a + b$" in page
    assert "total * 2 &lt; 3" in page                       # the code is escaped, the notes are not


def test_two_notes_on_one_line_are_joined_and_a_stale_note_fails():
    listing = annotated_source(_example, {"total =": "first", "a + b": "second"})
    assert listing.notes == {1: "first; second"}
    with pytest.raises(PMATrackError, match=r"_example: no line holds 'a - b'"):
        annotated_source(_example, {"a - b": "gone"})
