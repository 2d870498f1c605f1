"""The pass: one reconcile of one policy, stage by stage (controller, context, stages).

The pass reads the policy once, asks each stage in turn, and writes one status; the
stages call the flows (`retraining_operator.flows`) for everything that talks to AWS.
"""
