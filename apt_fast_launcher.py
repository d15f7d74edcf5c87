"""The `apt-fast` console script (pyproject.toml [project.scripts]), outside the apt_fast package.

Importing apt_fast imports torch, a second or more. A Ctrl-C in that time must end as one during a command
does, with one line and exit code 130, not a traceback; so this module imports only the standard library
before its ``try``, and the import of the command line is inside it.
"""

import sys

INTERRUPTED = 130  # 128 + SIGINT, as shells report a program stopped by Ctrl-C


def console_entry() -> None:
    try:
        from apt_fast.cli import main

        code = main()
    except KeyboardInterrupt:
        print("apt-fast: interrupted", file=sys.stderr)
        code = INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    console_entry()
