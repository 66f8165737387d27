"""Appeals against sanctions: deadlines from the policy, decisions (uphold, overturn, reduce), the CLI."""
