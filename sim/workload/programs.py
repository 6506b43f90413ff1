"""Prefix-sharing programs: shared system prompt, multi-turn sessions, tree-of-thought, long-doc QA,
grouped prefixes (a root shared by all + one prefix per group of requests).

Each program takes the generator, the arrival times of its roots (requests, sessions or trees) and
length specs, and returns a `Workload` whose block hashes (`ContentTree`) encode what is shared.
Arrivals of follow-up requests are open loop (fixed/think-time offsets, not completion times).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmsched.sim.errors import InputError
from llmsched.sim.workload.core import Workload
from llmsched.sim.workload.hashing import ContentTree, seed_salt
from llmsched.sim.workload.lengths import LengthSpec, sample_lengths


def build_workload(arrival_s, prompt_tokens, output_tokens, hashes: list[np.ndarray], *,
                   client=None, block_tokens: int, name: str, labels: dict | None = None,
                   client_names: tuple[str, ...] = ()) -> Workload:
    """Sort rows by arrival (stable) and pack the per-request hash arrays into ragged columns.

    `labels` are per-row arrays (given in input order) stored sorted in `meta["row_labels"]`.
    """
    arrival = np.asarray(arrival_s, np.float64)
    order = np.argsort(arrival, kind="stable")
    lens = np.asarray([len(h) for h in hashes], np.int64)[order]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    values = np.concatenate([hashes[i] for i in order]) if lens.sum() else np.zeros(0, np.int64)
    n = len(arrival)
    cl = np.zeros(n, np.int64) if client is None else np.asarray(client, np.int64)[order]
    return Workload(
        arrival_s=arrival[order], client=cl,
        prompt_tokens=np.asarray(prompt_tokens, np.int64)[order],
        output_tokens=np.asarray(output_tokens, np.int64)[order],
        hash_offsets=offsets, hash_values=values, client_names=client_names,
        hash_block_tokens=block_tokens, name=name,
        meta={"row_labels": {k: np.asarray(v)[order] for k, v in (labels or {}).items()}},
    )


def _need(cond: bool, program: str, field: str, problem: str) -> None:
    if not cond:
        raise InputError(program, field, problem)


def shared_system_prompt(rng: np.random.Generator, arrival_s: np.ndarray, lengths: LengthSpec, *,
                         system_tokens: int = 1024, n_system_prompts: int = 1,
                         block_tokens: int = 16) -> Workload:
    """Every request = one of `n_system_prompts` system prompts (chosen uniformly) + its own input.

    prompt_tokens = system_tokens + the input drawn from `lengths`; output from `lengths`.
    """
    _need(system_tokens >= 1, "shared-system-prompt", "system_tokens", "must be >= 1")
    _need(n_system_prompts >= 1, "shared-system-prompt", "n_system_prompts", "must be >= 1")
    tree = ContentTree(seed_salt(rng), block_tokens)
    systems = [tree.segment(None, system_tokens) for _ in range(n_system_prompts)]
    n = len(arrival_s)
    user, out = sample_lengths(lengths, rng, n)
    which = rng.integers(0, n_system_prompts, n)
    hashes = []
    for i in range(n):
        leaf = tree.segment(systems[which[i]], int(user[i]))
        hashes.append(tree.blocks(leaf))
    return build_workload(arrival_s, system_tokens + user, out, hashes, block_tokens=block_tokens,
                          name="shared-system-prompt", labels={"system_prompt": which})


def multi_turn(rng: np.random.Generator, session_arrival_s: np.ndarray, lengths: LengthSpec, *,
               min_turns: int = 2, max_turns: int = 6, think_s: float = 20.0,
               system_tokens: int = 0, max_context_tokens: int = 32768,
               first_turn: LengthSpec | None = None, turn_offsets_s: Sequence[np.ndarray] | None = None,
               block_tokens: int = 16) -> Workload:
    """Chat sessions: turn k's prompt = turn k-1's prompt + its output + new user tokens.

    Turns per session ~ uniform integer in [min_turns, max_turns]; turn k+1 arrives an Exp(think_s)
    gap after turn k's arrival (open loop: the generator does not know completion times). New user
    tokens and outputs per turn come from `lengths`. A session stops before a prompt would exceed
    `max_context_tokens`. An optional shared system prompt of `system_tokens` starts every session.
    `first_turn`, when given, draws turn 0's new tokens (e.g. an agent's long task prompt) instead
    of `lengths`. `turn_offsets_s`, when given, fixes session s's turns: turn k arrives at
    session_arrival_s[s] + turn_offsets_s[s][k] (non-decreasing), and the session has
    len(turn_offsets_s[s]) turns (min_turns, max_turns and think_s are then unused).
    `meta["row_labels"]["session"/"turn"]` give each row's session id and turn index (in row order).
    """
    _need(1 <= min_turns <= max_turns, "multi-turn", "min_turns/max_turns", "need 1 <= min_turns <= max_turns")
    _need(think_s >= 0, "multi-turn", "think_s", "must be >= 0 s")
    starts = np.asarray(session_arrival_s, np.float64)
    if turn_offsets_s is not None:
        _need(len(turn_offsets_s) == len(starts), "multi-turn", "turn_offsets_s", "need one array per session")
        _need(all(len(o) >= 1 and np.all(np.diff(o) >= 0) for o in turn_offsets_s), "multi-turn",
              "turn_offsets_s", "each session needs >= 1 non-decreasing offset")
    tree = ContentTree(seed_salt(rng), block_tokens)
    system = tree.segment(None, system_tokens) if system_tokens > 0 else None
    arr, prm, out, hashes, sess, turn = [], [], [], [], [], []
    for s, t0 in enumerate(starts):
        if turn_offsets_s is None:
            k_turns = int(rng.integers(min_turns, max_turns, endpoint=True))
            user, gen = sample_lengths(lengths, rng, k_turns)
            gaps = rng.exponential(think_s, k_turns) if think_s > 0 else np.zeros(k_turns)
        else:
            offs = np.asarray(turn_offsets_s[s], np.float64)
            k_turns = len(offs)
            user, gen = sample_lengths(lengths, rng, k_turns)
            gaps = np.diff(offs, append=offs[-1])
            t0 = t0 + offs[0]
        if first_turn is not None:
            user[0] = sample_lengths(first_turn, rng, 1)[0][0]
        parent, t = system, float(t0)
        for k in range(k_turns):
            leaf = tree.segment(parent, int(user[k]))
            prompt = tree.end(leaf)
            if prompt > max_context_tokens and k > 0:
                break
            arr.append(t)
            prm.append(prompt)
            out.append(int(gen[k]))
            hashes.append(tree.blocks(leaf))
            sess.append(s)
            turn.append(k)
            parent = tree.segment(leaf, int(gen[k]))  # the model's answer joins the context
            t += float(gaps[k])
    return build_workload(arr, prm, out, hashes, block_tokens=block_tokens, name="multi-turn",
                          labels={"session": sess, "turn": turn})


def tree_of_thought(rng: np.random.Generator, tree_arrival_s: np.ndarray, lengths: LengthSpec, *,
                    branching: int = 3, depth: int = 3, beam: int | None = 2, step_s: float = 10.0,
                    block_tokens: int = 16) -> Workload:
    """Tree-of-thought fan-out: each problem (input tokens from `lengths`) is expanded level by level.

    Level 1 sends `branching` requests with the problem as prompt, each generating one thought
    (output tokens from `lengths`). At each next level, `beam` of the previous level's thoughts
    (chosen at random; all of them when beam is None) are expanded: `branching` requests whose prompt
    is the problem + the thoughts on the path. Level l arrives (l-1) * step_s after the problem.
    Siblings share their whole prompt; cousins share the problem and common ancestors.
    `meta["row_labels"]["tree"/"level"]` label each row (in row order).
    """
    _need(branching >= 1, "tree-of-thought", "branching", "must be >= 1")
    _need(depth >= 1, "tree-of-thought", "depth", "must be >= 1")
    _need(beam is None or beam >= 1, "tree-of-thought", "beam", "must be >= 1 (or none)")
    tree = ContentTree(seed_salt(rng), block_tokens)
    arr, prm, out, hashes, tid, lvl = [], [], [], [], [], []
    for j, t0 in enumerate(np.asarray(tree_arrival_s, np.float64)):
        problem_tokens, _ = sample_lengths(lengths, rng, 1)
        frontier = [tree.segment(None, int(problem_tokens[0]))]
        for level in range(1, depth + 1):
            thoughts = []
            for node in frontier:
                block_ids = tree.blocks(node)
                _, gen = sample_lengths(lengths, rng, branching)
                for b in range(branching):
                    arr.append(float(t0) + (level - 1) * step_s)
                    prm.append(tree.end(node))
                    out.append(int(gen[b]))
                    hashes.append(block_ids)
                    tid.append(j)
                    lvl.append(level)
                    thoughts.append(tree.segment(node, int(gen[b])))
            if beam is not None and len(thoughts) > beam:
                keep = np.sort(rng.choice(len(thoughts), beam, replace=False))
                thoughts = [thoughts[i] for i in keep]
            frontier = thoughts
    return build_workload(arr, prm, out, hashes, block_tokens=block_tokens, name="tree-of-thought",
                          labels={"tree": tid, "level": lvl})


def long_doc_qa(rng: np.random.Generator, arrival_s: np.ndarray, lengths: LengthSpec, *,
                n_docs: int = 4, doc_tokens: int = 8192, zipf_s: float = 0.0,
                block_tokens: int = 16) -> Workload:
    """Many questions over a few long documents: prompt = document + question.

    Each request picks document d with probability proportional to (d+1)^-zipf_s (0 = uniform);
    question and answer lengths come from `lengths`. `meta["row_labels"]["doc"]` gives each row's document.
    """
    _need(n_docs >= 1, "long-doc-qa", "n_docs", "must be >= 1")
    _need(doc_tokens >= 1, "long-doc-qa", "doc_tokens", "must be >= 1")
    _need(zipf_s >= 0, "long-doc-qa", "zipf_s", "must be >= 0")
    tree = ContentTree(seed_salt(rng), block_tokens)
    docs = [tree.segment(None, doc_tokens) for _ in range(n_docs)]
    n = len(arrival_s)
    p = (np.arange(1, n_docs + 1, dtype=np.float64)) ** -zipf_s
    which = rng.choice(n_docs, n, p=p / p.sum())
    question, answer = sample_lengths(lengths, rng, n)
    hashes = [tree.blocks(tree.segment(docs[which[i]], int(question[i]))) for i in range(n)]
    return build_workload(arrival_s, doc_tokens + question, answer, hashes, block_tokens=block_tokens,
                          name="long-doc-qa", labels={"doc": which})


def grouped_prefix(rng: np.random.Generator, arrival_s: np.ndarray, group_of_request: np.ndarray,
                   group_tokens: np.ndarray, lengths: LengthSpec, *, root_tokens: int = 0,
                   block_tokens: int = 16) -> Workload:
    """Requests in groups: prompt = a root shared by all (`root_tokens`, 0 = none) + its group's
    prefix (`group_tokens[g]` tokens, shared by the group's requests only) + its own input.

    Request i (in `arrival_s` order) belongs to group `group_of_request[i]`; inputs and outputs come
    from `lengths`. Shapes: few-shot programming (root = the demonstration, groups = problems),
    video QA (groups = videos), per-tool prompts. `meta["row_labels"]["group"]` gives each row's group.
    """
    g_tok = np.asarray(group_tokens, np.int64)
    which = np.asarray(group_of_request, np.int64)
    _need(root_tokens >= 0, "grouped-prefix", "root_tokens", "must be >= 0")
    _need(len(g_tok) >= 1 and bool(np.all(g_tok >= 1)), "grouped-prefix", "group_tokens", "need >= 1 group of >= 1 token")
    _need(len(which) == len(arrival_s), "grouped-prefix", "group_of_request", "need one group per request")
    _need(bool(np.all((which >= 0) & (which < len(g_tok)))), "grouped-prefix", "group_of_request",
          f"groups must be in 0..{len(g_tok) - 1}")
    tree = ContentTree(seed_salt(rng), block_tokens)
    root = tree.segment(None, root_tokens) if root_tokens > 0 else None
    groups = [tree.segment(root, int(t)) for t in g_tok]
    user, out = sample_lengths(lengths, rng, len(which))
    hashes = [tree.blocks(tree.segment(groups[which[i]], int(user[i]))) for i in range(len(which))]
    return build_workload(arrival_s, root_tokens + g_tok[which] + user, out, hashes, block_tokens=block_tokens,
                          name="grouped-prefix", labels={"group": which})
