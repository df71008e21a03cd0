"""The offline stand-in for an OpenAI-compatible endpoint: a test double kept apart from the core.

- `model`: a deterministic writer, critic, reviser and summariser that work from the real text.
- `transport`: that model as an HTTP transport under `openai.AsyncOpenAI` (offline runs).
- `server`: the same model behind a loopback HTTP server (`refine-kit serve`).
- `faults`: a deterministic fault plan both of them apply.

The core imports this package only where the back-end is chosen (`settings`, `client`).
Nothing is imported here, so reading a `FaultPlan` never loads the model.
"""
