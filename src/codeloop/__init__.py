"""codeloop: make code LLMs better with data they generate and that execution verifies."""
__version__ = "0.1.0"
