"""The units of work that the CLI and the study runner share: the analysis registry and its options."""
