"""``python -m cleancut``: the ``cleancut`` command, for venvs without the script on PATH and
for notebooks (``!python -m cleancut photo.jpg``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    # prog_name "cleancut", not "__main__.py": usage and messages read as for the script.
    main()
