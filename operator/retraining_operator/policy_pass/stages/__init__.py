"""The stages of a reconcile pass, one module each; each is `step(p: PolicyPass) -> None`
and returns early when the pass is not its business. Stages never import each other
(an import-linter contract): what two stages share lives on the pass or in `workflow/`.
"""
