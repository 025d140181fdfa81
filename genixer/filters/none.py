"""No filtering: every parsed (and deduplicated) record is kept."""

from __future__ import annotations

from genixer.filters.base import Filter


class NoFilter(Filter):
    """Nothing to train, nothing to score; ``select`` keeps every record."""
