"""Jet variables: names, aliases, units, labels and residual rules (`registry`), and the model's domain (`domain`)."""
