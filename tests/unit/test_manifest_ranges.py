"""``lampi.core.manifest.overlapping``: the range arithmetic shared by S3 multipart
parts and SLO segments (which pieces of which items a byte range touches)."""

from __future__ import annotations

from lampi.core.manifest import Part, overlapping, part_pieces


def test_overlapping_cuts_items_to_the_range_and_stops_past_it() -> None:
    items = [("a", 5), ("b", 0), ("c", 10), ("d", 5)]  # bytes a:[0,5) b:[5,5) c:[5,15) d:[15,20)
    assert list(overlapping(items, 0, 20)) == [("a", 0, 5), ("b", 0, 0), ("c", 0, 10), ("d", 0, 5)]
    assert list(overlapping(items, 3, 7)) == [("a", 3, 5), ("b", 0, 0), ("c", 0, 2)]
    assert list(overlapping(items, 5, 15)) == [("c", 0, 10)]  # an empty item ending at the start: none
    assert list(overlapping(items, 19, 20)) == [("d", 4, 5)]
    assert list(overlapping(items, 20, 30)) == []

    def consumed() -> object:  # nothing past the range's end is read
        yield "a", 5
        yield "c", 10
        raise AssertionError("read past the end")

    assert list(overlapping(consumed(), 0, 5)) == [("a", 0, 5)]


def test_part_pieces_are_part_offset_length() -> None:
    parts = [Part("p1", 4, "e1"), Part("p2", 6, "e2")]
    assert [(p.blob_id, a, n) for p, a, n in part_pieces(parts, 2, 7)] == [("p1", 2, 2), ("p2", 0, 3)]
    assert [(p.blob_id, a, n) for p, a, n in part_pieces(parts, 4, 10)] == [("p2", 0, 6)]
