"""`python -m apt_fast ...`: the `apt-fast` command line."""

from .cli import console_entry

if __name__ == "__main__":
    console_entry()
