"""Write the embedded zoo's example corpus: documents drawn from its own training mixture.

The corpus pass (``wiki_builder.scores.corpus``) reads this file for the embedded models when no
``--corpus`` is given, so their head pages show text like the text they were trained on. Half the
documents come from the induction mixture, half from the task mixture, alternating, with a seed of
its own (not the training seed). Regenerate with ``python -m wiki_builder.zoo.sample_text``;
``tests/test_corpus.py`` checks the shipped file is what this writes.
"""

from __future__ import annotations

import random

from ..models.resolve import EMBEDDED_DIR
from .corpus import BOS, LONG_MIXTURE, SHORT_MIXTURE, sample_doc

N_DOCUMENTS = 300
SEED = 20260
TARGET = EMBEDDED_DIR / "corpus" / "zoo_text.txt"


def sample_text(n_documents: int = N_DOCUMENTS, seed: int = SEED) -> str:
    """The documents, words separated by spaces (BOS left out: the model's tokenizer adds it), one blank line between."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_documents):
        doc = sample_doc(rng, LONG_MIXTURE if i % 2 == 0 else SHORT_MIXTURE)
        docs.append(" ".join(w for w in doc.words if w != BOS))
    return "\n\n".join(docs) + "\n"


def main() -> None:
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(sample_text(), encoding="utf-8")
    print(f"wrote {TARGET.name}: {N_DOCUMENTS} documents")


if __name__ == "__main__":
    main()
