"""Language-model backends: one module per backend (local transformers + constrained decoding, OpenAI)."""
