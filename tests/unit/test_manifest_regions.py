"""The region table against the official SDK's enum, and region lookup."""

from __future__ import annotations

import pytest
from PureCloudPlatformClientV2.purecloud_region_hosts import PureCloudRegionHosts

from recsync.manifest import REGION_NAMES, REGIONS, find_region, get_region


def test_regions_match_sdk_enum() -> None:
    sdk = {member.name: member.value for member in PureCloudRegionHosts}

    ours = {region.sdk_name: region.api_host for region in REGIONS}

    assert ours == sdk


def test_regions_count() -> None:
    assert len(REGIONS) == 18


def test_region_names_dashed() -> None:
    assert REGION_NAMES[0] == "us-east-1"
    assert all("_" not in name for name in REGION_NAMES)


@pytest.mark.parametrize(
    "spelling",
    ["us-east-1", "us_east_1", "mypurecloud.com", "US-EAST-1", " us-east-1 "],
)
def test_find_region_spellings(spelling: str) -> None:
    region = find_region(spelling)

    assert region is not None
    assert region.name == "us-east-1"


def test_find_region_unknown() -> None:
    assert find_region("us-east-9") is None


def test_get_region_unknown_lists_names() -> None:
    with pytest.raises(KeyError, match="use one of: us-east-1, eu-west-1"):
        get_region("mars-1")


def test_region_hosts() -> None:
    region = get_region("eusc-de-east-1")

    assert region.api_host == "https://api.edee1.eusc-pure.cloud"
    assert region.login_host == "https://login.edee1.eusc-pure.cloud"
    assert region.streaming_host == "wss://streaming.edee1.eusc-pure.cloud"
