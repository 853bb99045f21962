"""The planner against brute force: every pair that involves a new image and at most one reference
image is covered exactly once, and no other pair is (the reference archive costs k*n, not n^2)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from imgindex.compare.plan import _plan_part


def covered(tasks) -> Counter:
    found: Counter = Counter()
    for t in tasks:
        if t.ids_b is None:
            found.update(itertools.combinations(sorted(t.ids_a), 2))
        else:
            found.update((min(a, b), max(a, b)) for a in t.ids_a for b in t.ids_b)
    return found


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(0, 30), chunksize=st.integers(1, 7))
def test_plan_covers_the_needed_pairs_once_and_nothing_else(data, n, chunksize):
    flags = st.lists(st.booleans(), min_size=n, max_size=n)
    new, ref = np.array(data.draw(flags), dtype=bool), np.array(data.draw(flags), dtype=bool)
    ids = np.array(data.draw(st.permutations(range(1, n + 1))), dtype=np.int64) if n else np.zeros(0, np.int64)
    found = covered(_plan_part(ids, new, ref, chunksize))
    at = {int(i): k for k, i in enumerate(ids)}
    needed = {(a, b) for a, b in itertools.combinations(sorted(at), 2)
              if (new[at[a]] or new[at[b]]) and not (ref[at[a]] and ref[at[b]])}
    assert all(count == 1 for count in found.values())  # never a pair twice
    assert set(found) <= needed  # never old with old, never reference with reference
    assert set(found) == needed
