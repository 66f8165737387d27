"""One synchroniser per kind of realm object; `KINDS` is the order they are planned and applied in."""
