"""Image backends: local diffusers pipelines and the OpenAI images API."""
