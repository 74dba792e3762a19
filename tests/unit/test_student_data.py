"""Query groups of the distillation loader: every row once per epoch, one query per group, a fixed order per seed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from disranker.student.data import QueryGroups


def table(sizes: list[int]) -> pa.Table:
    query_ids = [f"q{q}" for q, n in enumerate(sizes) for _ in range(n)]
    n = len(query_ids)
    return pa.table(
        {
            "query_id": query_ids,
            "query": ["a query"] * n,
            "title": ["t"] * n,
            "summary": ["s"] * n,
            "teacher_score": np.arange(n, dtype=np.float32),
        }
    )


def test_each_row_once_per_epoch_and_groups_hold_one_query():
    data = QueryGroups(table([5, 3, 8, 1]), "teacher_score", group_size=4, groups_per_batch=2, seed=3)
    groups = data.epoch_groups(0)
    rows = groups[groups >= 0]
    assert sorted(rows.tolist()) == list(range(17))
    assert groups.shape == (2 + 1 + 2 + 1, 4)  # ceil(5/4) + ceil(3/4) + ceil(8/4) + ceil(1/4)
    codes = data.query_codes
    for group in groups:
        assert len(set(codes[group[group >= 0]].tolist())) == 1


def test_order_is_a_function_of_seed_and_epoch():
    data = QueryGroups(table([6, 6, 6]), "teacher_score", group_size=4, groups_per_batch=1, seed=0)
    np.testing.assert_array_equal(data.epoch_groups(1), data.epoch_groups(1))
    assert not np.array_equal(data.epoch_groups(0), data.epoch_groups(1))


def test_steps_per_epoch_drops_the_remainder_and_rejects_too_little_data():
    data = QueryGroups(table([4] * 7), "teacher_score", group_size=4, groups_per_batch=2, seed=0)
    assert data.steps_per_epoch(world_size=2) == 1  # 7 groups, 4 per step
    with pytest.raises(ValueError, match="cannot fill one step"):
        data.steps_per_epoch(world_size=4)
