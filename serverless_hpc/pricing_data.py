"""The one place that reads ``prices.json`` (the package's price data file).

Kept apart from :mod:`serverless_hpc.pricing` so that module stays free of I/O: formulas take
a :class:`~serverless_hpc.pricing.Prices`, tests build one by hand, and only callers that want
the shipped prices (the AWS targets, the report) read the file through here.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from serverless_hpc.pricing import Prices

PRICES_FILE = "prices.json"


def read_data_file(name: str, path: Path | None = None) -> Any:
    """The JSON of ``path``, or of the package's own data file ``name`` when no path is given.

    Price and platform data ship inside the package and a user may point to an edited copy.
    """
    if path is None:
        text = resources.files("serverless_hpc").joinpath(name).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=4)
def load_prices(path: Path | None = None) -> Prices:
    """Parse ``path`` (default: the packaged ``prices.json``) once per process."""
    return Prices.from_dict(read_data_file(PRICES_FILE, path))
