"""Model zoo for the implemented Table 1 families."""
