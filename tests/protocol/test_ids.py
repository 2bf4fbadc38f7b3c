"""Request ids: Anthropic's ``req_`` shape, unique, and ordered by time."""

from __future__ import annotations

import re
import time

from anygate.protocol.ids import new_request_id


def test_request_ids_are_unique_and_sort_by_time() -> None:
    earlier = [new_request_id() for _ in range(1000)]
    assert len(set(earlier)) == 1000
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", request_id) for request_id in earlier)
    time.sleep(0.002)  # the time part counts milliseconds
    later = new_request_id()
    assert later > max(earlier)
    milliseconds = int(later[4:15], 16)
    assert abs(milliseconds / 1000 - time.time()) < 5
