"""The fixed render chain: typesetting, diagrams, layouts, pictograms, subtitles, captions, audio, video."""
