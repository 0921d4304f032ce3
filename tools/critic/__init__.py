"""Critics that score a frame against its narration: local CLIP and a hosted vision model."""
