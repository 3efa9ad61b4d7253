"""Exit statuses shared by every subcommand.

0 done; 1 done, but some input could not be used (a photo with no face, an
unreadable file); 2 bad usage, config, models or gallery.
"""

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2
