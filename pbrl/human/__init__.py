"""The human teacher: rendered clips, the SQLite label store and the local web viewer."""
