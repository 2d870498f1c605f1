"""The runtime: what runs beside the passes for the whole process (the SQS event hub).

The process-wide pieces that predate this package (`runner.py`, `leader.py`, `fencing.py`,
`heap.py`, `handlers.py`) still live at the top level; see docs/architecture.md.
"""
