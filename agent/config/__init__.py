"""The config loader: strict YAML with file:line:col on every value, and compiler-style diagnostics."""
