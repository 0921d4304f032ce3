"""Speech backends (one module per engine), the fallback voice, word timing and the pronunciation lexicon."""
