import gzip
import json

import pytest

from regen_dataset.cli import _read_lines
from regen_dataset.release import ReleaseFormatError
from tests.conftest import user


def test_rate_and_bias_check_read_gzipped_release_files(tmp_path):
    """`regen dataset rate` and `bias-check` read their --data like the build does: gzip too."""
    path = tmp_path / "office.jsonl.gz"
    lines = [json.dumps(user(f"U{i}", 3)) for i in range(3)]
    with gzip.open(path, "wt") as handle:
        handle.write(lines[0] + "\n\n" + lines[1] + "\n" + lines[2])  # a blank line, no last \n
    assert [u["reviewer_id"] for u in _read_lines(str(path))] == ["U0", "U1", "U2"]
    bad = user("U3", 3)
    bad["purchase_history"][1]["review"]["rating"] = 9
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join([lines[0], "", json.dumps(bad)]) + "\n")
    with pytest.raises(ReleaseFormatError) as error:
        list(_read_lines(str(path)))
    assert (error.value.line, error.value.field) == (3, "purchase_history[1].review.rating")
