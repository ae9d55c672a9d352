"""ATLAS-style figures and the Markdown report."""
