"""Package data bundled with clinfusion (see nih_cxr_1k/README.md)."""
