"""Score families computed from a loaded model: attention patterns (:mod:`.attention`) and weights (:mod:`.weights`).

:mod:`.base` holds the contracts (one type per kind, the run context, detail meanings), :mod:`.probe`
the shared random-token probe, :mod:`.runner` runs a list of families on a model. The list of
built-in families is :mod:`wiki_builder.families`.
"""
