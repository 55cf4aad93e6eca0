"""NIH ChestX-ray14 760-image demo cohort; attribution in README.md."""
