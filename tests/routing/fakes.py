"""A hand-built cluster state for router unit tests: instances with chosen queues, KV and
prefix contents, and requests with chosen prompts and hash blocks (no engine involved)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FakeStats:
    index: int
    waiting: tuple = ()
    ready: tuple = ()
    prefilling: tuple = ()
    decoding: tuple = ()
    kv_blocks_total: int = 100
    kv_blocks_available: int = 100
    block_size: int = 16
    outstanding_tokens: int = 0
    cached: dict = field(default_factory=dict)  # rid -> prefix match tokens on this instance
    service: dict = field(default_factory=dict)  # client -> (input, cached_input, output)
    spec: object = None
    evictions: list = field(default_factory=list)
    cost_model: object = None

    waiting_count = property(lambda self: len(self.waiting) + len(self.ready))
    running_count = property(lambda self: len(self.prefilling) + len(self.decoding))
    running = property(lambda self: tuple(self.prefilling) + tuple(self.decoding))
    kv_blocks_used = property(lambda self: self.kv_blocks_total - self.kv_blocks_available)

    def prefix_match_tokens(self, rid):
        return self.cached.get(rid, 0)

    def input_service(self, c):
        return self.service.get(c, (0, 0, 0))[0]

    def cached_input_service(self, c):
        return self.service.get(c, (0, 0, 0))[1]

    def output_service(self, c):
        return self.service.get(c, (0, 0, 0))[2]

    def drain_evictions(self):
        out, self.evictions = self.evictions, []
        return out


class FakeView:
    def __init__(self, stats, prompts=None, outputs=None, hashes=None, clients=None, hb=16,
                 priority=None, kv=None, generated=None):
        self.stats = stats
        self.now = 0.0
        self.hash_block_tokens = hb
        self.prompts = prompts or {}
        self.outputs = outputs or {}
        self.hash = hashes or {}
        self.clients = clients or {}
        self.prio = priority or {}
        self.kv = kv or {}
        self.gen = generated or {}
        self.migrations: list = []
        self.restarts: list = []
        self.charged_set: set = set()
        self.first_token: dict = {}
        self.arrival: dict = {}

    n_instances = property(lambda self: len(self.stats))

    def instance(self, j):
        return self.stats[j]

    def prompt_tokens(self, rid):
        return self.prompts.get(rid, 100)

    def output_tokens(self, rid):
        return self.outputs.get(rid, 10)

    def hashes(self, rid):
        return np.asarray(self.hash.get(rid, []), dtype=np.int64)

    def client(self, rid):
        return self.clients.get(rid, 0)

    def priority(self, rid):
        return self.prio.get(rid, 0)

    def kv_tokens(self, rid):
        return self.kv.get(rid, 0)

    def generated_tokens(self, rid):
        return self.gen.get(rid, 0)

    def charged(self, rid):
        return rid in self.charged_set

    def first_token_s(self, rid):
        return self.first_token.get(rid, float("nan"))

    def arrival_s(self, rid):
        return self.arrival.get(rid, 0.0)

    def migrate_live(self, rid, to, max_stages=3, last_stage_max_blocks=4, abort_after_max_stages=False):
        self.migrations.append((rid, to))
        return True

    def restart(self, rid, to):
        self.restarts.append((rid, to))
        return True

    def set_down(self, j, down):
        pass
