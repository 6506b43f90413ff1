"""Prefix programs and block hashes: prefix properties, sharing exactly what the content shares,
determinism from the seed, and an independent token-level oracle for the content tree."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.sim.workload import programs
from llmsched.sim.workload.hashing import ContentTree, mix63
from llmsched.sim.workload.lengths import LengthSpec

L = LengthSpec("uniform", input_min=1, input_max=120, output_min=1, output_max=90)


def turns_extend(w) -> bool:
    """Within each session, turn k+1's hashes start with turn k's (the property under test)."""
    labels = w.meta["row_labels"]
    for s in np.unique(labels["session"]):
        rows = np.flatnonzero(labels["session"] == s)
        rows = rows[np.argsort(labels["turn"][rows])]
        for a, b in itertools.pairwise(rows):
            ha, hb = w.hashes(a), w.hashes(b)
            if len(hb) < len(ha) or not np.array_equal(hb[: len(ha)], ha):
                return False
    return True


def test_multi_turn_prefix_property_and_negative_control():
    rng = np.random.default_rng(0)
    w = programs.multi_turn(rng, np.sort(rng.uniform(0, 300, 60)), L, min_turns=2, max_turns=8, block_tokens=16)
    assert w.n > 120 and turns_extend(w)
    lab = w.meta["row_labels"]
    # prompt of turn k+1 = prompt_k + output_k + new user tokens (>= 1)
    for s in np.unique(lab["session"])[:20]:
        rows = np.flatnonzero(lab["session"] == s)
        rows = rows[np.argsort(lab["turn"][rows])]
        for a, b in itertools.pairwise(rows):
            assert w.prompt_tokens[b] > w.prompt_tokens[a] + w.output_tokens[a]
    assert np.array_equal(np.diff(w.hash_offsets), w.prompt_tokens // 16)  # full blocks only
    # unrelated sessions share no block (no system prompt here)
    first = {int(s): set(w.hashes(np.flatnonzero(lab["session"] == s)[0]).tolist()) for s in np.unique(lab["session"])}
    ids = list(first)
    for i in range(len(ids) - 1):
        assert not (first[ids[i]] & first[ids[i + 1]])
    # negative control: corrupt one later turn's first hash -> the check must fail
    later = int(np.flatnonzero((lab["turn"] > 0) & (np.diff(w.hash_offsets) > 0))[0])
    vals = w.hash_values.copy()
    vals[w.hash_offsets[later]] += 1
    assert not turns_extend(w.with_columns(hash_values=vals))


def test_multi_turn_system_prompt_and_context_cap():
    rng = np.random.default_rng(1)
    w = programs.multi_turn(rng, np.arange(10.0), L, system_tokens=64, max_context_tokens=400, block_tokens=16)
    firsts = w.hash_values[w.hash_offsets[:-1]]
    assert len(np.unique(firsts)) == 1  # 64 system tokens = 4 shared blocks at the start of every prompt
    assert np.all(w.prompt_tokens[w.meta["row_labels"]["turn"] > 0] <= 400)


def test_shared_system_prompt_shares_exactly_the_system_blocks():
    rng = np.random.default_rng(2)
    S, B = 100, 16  # 6 full blocks inside the system prompt; block 7 straddles system and user text
    w = programs.shared_system_prompt(rng, np.arange(200.0), L, system_tokens=S, n_system_prompts=3, block_tokens=B)
    sp = w.meta["row_labels"]["system_prompt"]
    assert w.prompt_tokens.min() >= S + 1 and w.prompt_tokens.max() <= S + 120
    for i in range(40):
        for j in range(i + 1, 40):
            common = 0
            hi, hj = w.hashes(i), w.hashes(j)
            while common < min(len(hi), len(hj)) and hi[common] == hj[common]:
                common += 1
            assert common == (S // B if sp[i] == sp[j] else 0)
            assert len(set(hi[S // B:].tolist()) & set(hj.tolist())) == 0  # user parts never shared


def test_tree_of_thought_structure():
    rng = np.random.default_rng(3)
    b, d, beam = 3, 3, 2
    w = programs.tree_of_thought(rng, np.array([0.0, 100.0]), L, branching=b, depth=d, beam=beam, step_s=5.0)
    lab = w.meta["row_labels"]
    # per tree: b requests at level 1, then beam*b at every further level
    for tree in (0, 1):
        levels = lab["level"][lab["tree"] == tree]
        assert [int((levels == k).sum()) for k in (1, 2, 3)] == [b, beam * b, beam * b]
    # siblings (same tree, same level, same prompt length) have identical hashes; level l+1
    # prompts extend some level-l prompt's hashes (problem + thoughts)
    t0 = np.flatnonzero(lab["tree"] == 0)
    l1 = [w.hashes(i) for i in t0 if lab["level"][i] == 1]
    assert all(np.array_equal(h, l1[0]) for h in l1)
    for i in t0[lab["level"][t0] == 2]:
        assert np.array_equal(w.hashes(i)[: len(l1[0])], l1[0])
    assert np.allclose(w.arrival_s[t0], (lab["level"][t0] - 1) * 5.0)
    # different trees share nothing
    t1 = np.flatnonzero(lab["tree"] == 1)
    assert not set(np.concatenate([w.hashes(i) for i in t0]).tolist()) & set(
        np.concatenate([w.hashes(i) for i in t1]).tolist())


def test_long_doc_qa_sharing_and_popularity():
    rng = np.random.default_rng(4)
    w = programs.long_doc_qa(rng, np.arange(4000.0) / 10, L, n_docs=3, doc_tokens=1000, zipf_s=1.0)
    doc = w.meta["row_labels"]["doc"]
    heads = {}
    for i in range(w.n):
        h = tuple(w.hashes(i)[: 1000 // 16].tolist())
        heads.setdefault(int(doc[i]), set()).add(h)
    assert all(len(v) == 1 for v in heads.values()) and len({next(iter(v)) for v in heads.values()}) == 3
    # Zipf(1) over 3 docs: p = (1, 1/2, 1/3)/(11/6) = 0.545, 0.273, 0.182; 4000 draws, 5 sd bands
    p = np.array([6 / 11, 3 / 11, 2 / 11])
    freq = np.bincount(doc, minlength=3) / w.n
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / w.n))


def test_programs_are_deterministic_and_seed_dependent():
    def make(seed):
        rng = np.random.default_rng(seed)
        return programs.multi_turn(rng, np.arange(20.0), L)

    a, b, c = make(5), make(5), make(6)
    for col in ("arrival_s", "prompt_tokens", "output_tokens", "hash_offsets", "hash_values"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert not set(a.hash_values.tolist()) & set(c.hash_values.tolist())  # different seeds: new salt


def test_mix63_is_a_bijection_on_small_ranges():
    x = np.arange(1 << 16, dtype=np.uint64)
    for salt in (0, 12345, (1 << 63) - 1):
        y = mix63(x, salt)
        assert len(np.unique(y)) == len(x) and y.min() >= 0


@st.composite
def trees(draw):
    """Random content trees (segments with parents) and prompts (a segment + a prefix length)."""
    n = draw(st.integers(1, 25))
    parents, lengths = [], []
    for i in range(n):
        parents.append(draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None)
        lengths.append(draw(st.integers(1, 40)))
    leaves = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=8))
    cut = draw(st.lists(st.floats(0, 1), min_size=len(leaves), max_size=len(leaves)))
    return parents, lengths, leaves, cut, draw(st.integers(1, 9))


@settings(max_examples=150)
@given(trees())
def test_content_tree_matches_token_oracle(case):
    parents, lengths, leaves, cut, B = case
    tree = ContentTree(salt=99, block_tokens=B)
    for p, n in zip(parents, lengths):
        tree.segment(p, n)

    def tokens(leaf):  # oracle: the explicit token sequence, each token named (segment, index)
        path = []
        s = leaf
        while s is not None:
            path.append(s)
            s = parents[s]
        return [(seg, k) for seg in reversed(path) for k in range(lengths[seg])]

    prompts = []
    for leaf, c in zip(leaves, cut):
        seq = tokens(leaf)
        m = max(1, round(c * len(seq)))
        prompts.append((seq[:m], tree.blocks(leaf, m)))
    for seq, h in prompts:
        assert len(h) == len(seq) // B
    for s1, h1 in prompts:
        for s2, h2 in prompts:
            for j in range(min(len(h1), len(h2))):
                same = s1[: (j + 1) * B] == s2[: (j + 1) * B]
                assert (h1[j] == h2[j]) == same
            for i in range(len(h1)):  # blocks at different positions hold different-length content
                assert not np.any(np.delete(h2, i) == h1[i]) if i < len(h2) else not np.any(h2 == h1[i])


def _shared_blocks(w, a: int, b: int) -> int:
    """Length of the common leading run of two rows' block hashes."""
    ha, hb = w.hashes(a), w.hashes(b)
    n = min(len(ha), len(hb))
    neq = np.flatnonzero(ha[:n] != hb[:n])
    return int(neq[0]) if len(neq) else n


def test_grouped_prefix_structure_hand_derived():
    # root 64 tokens = 4 blocks of 16; group 0 = 128 tokens (8 blocks), group 1 = 40 tokens;
    # inputs fixed at 33 tokens. Prompts: 64 + 128 + 33 = 225 (14 full blocks), 64 + 40 + 33 = 137 (8).
    fixed = LengthSpec("fixed", input_tokens=33, output_tokens=7)
    w = programs.grouped_prefix(np.random.default_rng(0), np.arange(4.0), np.array([0, 1, 0, 1]),
                                np.array([128, 40]), fixed, root_tokens=64, block_tokens=16)
    assert w.prompt_tokens.tolist() == [225, 137, 225, 137]
    assert w.output_tokens.tolist() == [7] * 4
    assert np.diff(w.hash_offsets).tolist() == [14, 8, 14, 8]
    # same group 0: root + group = 192 tokens = 12 shared blocks; the 13th block mixes in the own input
    assert _shared_blocks(w, 0, 2) == 12
    # same group 1: 64 + 40 = 104 tokens -> 6 full blocks (the 7th ends inside the own input)
    assert _shared_blocks(w, 1, 3) == 6
    # different groups share the root's 4 blocks only
    assert _shared_blocks(w, 0, 1) == 4
    assert w.meta["row_labels"]["group"].tolist() == [0, 1, 0, 1]
    # negative control: no root -> groups share nothing
    w0 = programs.grouped_prefix(np.random.default_rng(0), np.arange(4.0), np.array([0, 1, 0, 1]),
                                 np.array([128, 40]), fixed, block_tokens=16)
    assert _shared_blocks(w0, 0, 1) == 0 and _shared_blocks(w0, 0, 2) == 8


def test_grouped_prefix_bad_group_is_input_error():
    import pytest

    from llmsched.sim.errors import InputError

    with pytest.raises(InputError):
        programs.grouped_prefix(np.random.default_rng(0), np.arange(2.0), np.array([0, 2]), np.array([16, 16]), L)


def test_multi_turn_fixed_turn_times_and_first_turn():
    # two sessions at 0 s and 100 s with turns at offsets (0, 5, 7) and (1,); first turn 500 tokens,
    # later turns add output + 10 tokens (fixed lengths: input 10, output 4)
    fixed = LengthSpec("fixed", input_tokens=10, output_tokens=4)
    first = LengthSpec("fixed", input_tokens=500, output_tokens=1)
    w = programs.multi_turn(np.random.default_rng(0), np.array([0.0, 100.0]), fixed, first_turn=first,
                            turn_offsets_s=[np.array([0.0, 5.0, 7.0]), np.array([1.0])], block_tokens=16)
    assert w.arrival_s.tolist() == [0.0, 5.0, 7.0, 101.0]
    # prompts: 500, 500 + 4 + 10 = 514, 514 + 4 + 10 = 528; second session 500
    assert w.prompt_tokens.tolist() == [500, 514, 528, 500]
    assert turns_extend(w)
    # sessions share no block
    assert _shared_blocks(w, 0, 3) == 0
