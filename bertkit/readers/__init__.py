"""File formats, read into `datasets` objects with errors that name the file, line (or place) and setting.
Readers know formats, not tasks: each task turns what they read into its examples."""
