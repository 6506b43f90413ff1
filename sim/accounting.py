"""Service accounting weights: the one definition of what a prompt token and an output token cost.

The engine records raw token counts (`llmsched.sim.state.RequestTable`); a client's service is
w_p x prompt tokens + w_q x output tokens with the run's weights (`RunConfig.input_weight`,
`RunConfig.output_weight`), whose defaults are these.
"""

from __future__ import annotations

# w_p = 1, w_q = 2 "following OpenAI pricing": VTC paper (Sheng et al., OSDI'24) Sec. 4 and the
# artifact's `slora/server/router/vtc_req_queue.py` (input_price=1, output_price=2).
DEFAULT_INPUT_WEIGHT = 1.0
DEFAULT_OUTPUT_WEIGHT = 2.0
