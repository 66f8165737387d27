"""Reading and checking the journal: `idp-agent audit show` and `idp-agent audit verify`."""
