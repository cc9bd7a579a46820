"""Genesys Cloud regions and their hosts.

The table copies ``PureCloudRegionHosts`` from the official Python SDK
(``purecloudplatformclientv2`` 269, module ``purecloud_region_hosts``), which lists 18
regions. The SDK is a test dependency only, so the table is written out here and a unit
test compares it with the installed SDK's enum.
"""

from __future__ import annotations

import logging

import attrs

logger = logging.getLogger(__name__)


@attrs.frozen
class Region:
    """A Genesys Cloud region: its dashed name, the SDK's name and its DNS domain."""

    name: str
    sdk_name: str
    domain: str

    @property
    def api_host(self) -> str:
        """Base URL of the region's REST API, such as ``https://api.mypurecloud.com``."""
        return f"https://api.{self.domain}"

    @property
    def login_host(self) -> str:
        """Base URL of the region's OAuth server."""
        return f"https://login.{self.domain}"

    @property
    def streaming_host(self) -> str:
        """Base URL of the region's notification WebSocket service."""
        return f"wss://streaming.{self.domain}"


def _region(sdk_name: str, domain: str) -> Region:
    return Region(name=sdk_name.replace("_", "-"), sdk_name=sdk_name, domain=domain)


REGIONS: tuple[Region, ...] = (
    _region("us_east_1", "mypurecloud.com"),
    _region("eu_west_1", "mypurecloud.ie"),
    _region("ap_southeast_2", "mypurecloud.com.au"),
    _region("ap_northeast_1", "mypurecloud.jp"),
    _region("eu_central_1", "mypurecloud.de"),
    _region("us_west_2", "usw2.pure.cloud"),
    _region("ca_central_1", "cac1.pure.cloud"),
    _region("ap_northeast_2", "apne2.pure.cloud"),
    _region("eu_west_2", "euw2.pure.cloud"),
    _region("ap_south_1", "aps1.pure.cloud"),
    _region("us_east_2", "use2.us-gov-pure.cloud"),
    _region("sa_east_1", "sae1.pure.cloud"),
    _region("me_central_1", "mec1.pure.cloud"),
    _region("ap_northeast_3", "apne3.pure.cloud"),
    _region("eu_central_2", "euc2.pure.cloud"),
    _region("mx_central_1", "mxc1.pure.cloud"),
    _region("ap_southeast_1", "apse1.pure.cloud"),
    _region("eusc_de_east_1", "edee1.eusc-pure.cloud"),
)
"""All regions, in the order of the SDK's enum."""

REGION_NAMES: tuple[str, ...] = tuple(region.name for region in REGIONS)
"""Canonical (dashed) region names, such as ``us-east-1``."""

_BY_SPELLING: dict[str, Region] = {}
for _entry in REGIONS:
    for _spelling in (_entry.name, _entry.sdk_name, _entry.domain):
        _BY_SPELLING[_spelling] = _entry


def find_region(text: str) -> Region | None:
    """Return the region that ``text`` names, or None when no region matches.

    ``text`` may be the dashed name (``us-east-1``), the SDK's name (``us_east_1``) or
    the domain (``mypurecloud.com``), in any letter case.
    """
    return _BY_SPELLING.get(text.strip().lower())


def get_region(text: str) -> Region:
    """Return the region that ``text`` names, like :func:`find_region`.

    Raises:
        KeyError: no region matches. The message lists the known names.
    """
    region = find_region(text)
    if region is None:
        known = ", ".join(REGION_NAMES)
        raise KeyError(f"{text!r} is not a known region; use one of: {known}")
    return region
