"""``python -m gridplan``: the ``gridplan`` command (:func:`gridplan.cli.main`)."""

import sys

from gridplan.cli import main

if __name__ == "__main__":
    sys.exit(main())
