"""``python -m genixer.report <sweep dir | parent run id>``: a sweep's report again
(:mod:`genixer.runs.report`)."""

from __future__ import annotations

import sys

from genixer.runs.report import main

if __name__ == "__main__":
    sys.exit(main())
