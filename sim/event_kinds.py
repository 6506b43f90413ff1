"""The engine's event priorities and event kinds, in one place (the engine's handlers and the
migration mechanics both push events).

At equal times: external arrivals, then router ticks, then instance wake-ups, then events the run
itself generated (LATE), as `llmsched.sim.engine` documents.
"""

ARRIVE, TICK, WAKE, LATE = 0, 1, 2, 3  # priorities
EV_TRANSFER = "transfer"  # KV (or a restarted request) reached its destination instance
EV_TICK, EV_WAKE, EV_RELEASE = "tick", "wake", "release"
EV_STAGE = "stage"  # one pre-copy stage of a multi-stage live migration ended
EV_ROUTED = "routed"  # a routing decision of the global scheduler ended: deliver the request
EV_SLICE = "slice"  # a request's generation slice ended (Plan.slice_tokens): route it again
EV_ENCODED = "encoded"  # an encoder instance's batch ended (EPD encode pool)
EV_EMBEDDED = "embedded"  # one encode job's embeddings reached the prefill side
EV_UPLOADED = "uploaded"  # a request's prompt crossed its instance's uplink (edge-cloud, PerLLM)
RESTART = -1.0  # pending-migration marker: drop the KV and recompute at the destination
