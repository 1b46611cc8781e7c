"""Speech corpora: the manifest format, readers, validation, the offline TTS corpus and batching."""
