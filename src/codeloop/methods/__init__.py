"""Methods: each file reads like its paper's algorithm box and composes the layers below."""
