"""Processing provider of RTS Fusion: one thin module per algorithm over core/ and models/."""
