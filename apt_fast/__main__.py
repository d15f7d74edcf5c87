"""`python -m apt_fast ...`: the `apt-fast` command line.

Python imports the apt_fast package, and with it torch, before this file runs: a Ctrl-C during that import
still ends in Python's traceback (the `apt-fast` script, apt_fast_launcher.py, imports the package inside its
``try`` and covers it). From here on a Ctrl-C ends as in the script: one line and exit code 130.
"""

import sys

if __name__ == "__main__":
    try:
        from .cli import main

        code = main()
    except KeyboardInterrupt:
        print("apt-fast: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
