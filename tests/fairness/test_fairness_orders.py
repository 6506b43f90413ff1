"""Queue orders of the locality baselines on a stub view (no simulator): LPM and DFS-weight."""

from __future__ import annotations

from llmsched.policies.batching.lpm import dfs_weight_order, lpm_order


class _View:
    def __init__(self, paths: dict[int, list[int]], cached: dict[int, int], with_hashes: bool = True):
        self.paths, self.cached = paths, cached
        if with_hashes:
            self.prefix_hashes = lambda rid: self.paths[rid]

    def cached_prefix_tokens(self, rid: int) -> int:
        return self.cached[rid]


def test_lpm_longest_first_stable():
    v = _View({}, {0: 16, 1: 64, 2: 16, 3: 0}, with_hashes=False)
    assert lpm_order(v, [0, 1, 2, 3]) == [1, 0, 2, 3]


def test_dfs_weight_groups_heaviest_subtree_first():
    # tree: root -> A(1) -> {B(2): r0, r1; C(3): r2}; root -> D(4): r3; r4 sits at A itself.
    # weights: A = 4 (r0, r1, r2, r4), D = 1; under A: B = 2 before C = 1; A's own r4 after
    # its children (post-order). By hand: r0, r1, r2, r4, r3.
    paths = {0: [1, 2], 1: [1, 2], 2: [1, 3], 3: [4], 4: [1]}
    v = _View(paths, dict.fromkeys(paths, 0))
    assert dfs_weight_order(v, [3, 0, 2, 4, 1]) == [0, 1, 2, 4, 3]


def test_dfs_weight_without_hashes_falls_back_to_lpm():
    v = _View({}, {0: 0, 1: 32}, with_hashes=False)
    assert dfs_weight_order(v, [0, 1]) == [1, 0]
