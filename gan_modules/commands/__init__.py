"""Subcommands beyond fit/validate/test; each module defines NAME, HELP and main(argv)."""
