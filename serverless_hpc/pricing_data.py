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

from serverless_hpc.pricing import InstanceType, PriceError, Prices

PRICES_FILE = "prices.json"
#: The platform profile (read in full by :mod:`serverless_hpc.report.profile`); here only
#: its comparison VM type is looked up, for targets that emulate that VM.
PROFILE_FILE = "platform_profile.json"


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


def comparison_vm() -> InstanceType:
    """The catalogue entry of the platform profile's comparison VM type (``vm_instance_type``).

    :class:`PriceError` when the profile names a type the price file's catalogue lacks.
    """
    name = str(read_data_file(PROFILE_FILE)["vm_instance_type"])
    try:
        return load_prices().ec2.instances[name]
    except KeyError:
        raise PriceError(f"the instance catalogue (prices.json) has no {name!r}") from None
