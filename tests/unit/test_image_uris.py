"""The operator's image lookup agrees with the SageMaker SDK, without paying for the SDK.

`aws/images.py` reads the SDK's shipped JSON data (no sagemaker import) and builds the
URI as `sagemaker.core.image_uris.retrieve` does. The SDK itself is imported here only,
in the test process, to prove the two agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from retraining_operator.aws.images import (
    ImageLookupError,
    algorithm_image_uri,
    ecr_hostname,
    published_regions,
)

HEAVY = ("pandas", "scipy", "numpy", "sagemaker")


@pytest.fixture(scope="module")
def sdk_retrieve():  # type: ignore[no-untyped-def]
    from sagemaker.core import image_uris

    return image_uris.retrieve


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"),
        ("eu-west-1", "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1"),
        ("ap-southeast-2", "544295431143.dkr.ecr.ap-southeast-2.amazonaws.com/object-detection:1"),
        ("cn-north-1", "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/object-detection:1"),
    ],
)
def test_matches_sdk_retrieve(sdk_retrieve, region: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    sdk = sdk_retrieve("object-detection", region, version="1")
    assert algorithm_image_uri("object-detection", region, "1") == sdk
    assert sdk == expected  # and the seed's account/host layout, spelled out once


def test_matches_sdk_in_every_published_region(sdk_retrieve) -> None:  # type: ignore[no-untyped-def]
    regions = published_regions("object-detection")
    assert len(regions) >= 30
    mismatched = {
        region: (algorithm_image_uri("object-detection", region), sdk)
        for region in regions
        if (sdk := sdk_retrieve("object-detection", region, version="1"))
        != algorithm_image_uri("object-detection", region)
    }
    assert mismatched == {}


def test_single_version_algorithm_answers_any_version_like_the_sdk(sdk_retrieve) -> None:  # type: ignore[no-untyped-def]
    assert algorithm_image_uri("object-detection", "us-west-2", "latest") == sdk_retrieve(
        "object-detection", "us-west-2", version="latest"
    )


def test_unknown_region_and_algorithm_are_clear_errors() -> None:
    with pytest.raises(ImageLookupError, match="not published in region 'mars-north-1'"):
        algorithm_image_uri("object-detection", "mars-north-1")
    with pytest.raises(ImageLookupError, match="no image URI data for algorithm"):
        algorithm_image_uri("no-such-algorithm", "us-east-1")
    assert ecr_hostname("us-east-1") == "ecr.us-east-1.amazonaws.com"


PROBE = textwrap.dedent(
    """
    import json, sys, time
    def peak_rss_mb():  # VmHWM: this process's peak RSS (ru_maxrss survives exec on Linux)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    baseline = peak_rss_mb()
    start = time.perf_counter()
    {code}
    elapsed = time.perf_counter() - start
    print(json.dumps({{
        "uri": uri,
        "seconds": elapsed,
        "baseline_rss_mb": baseline,
        "max_rss_mb": peak_rss_mb(),
        "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})),
    }}))
    """
)


def _probe(code: str) -> dict[str, object]:
    script = PROBE.format(code=code, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_operator_lookup_imports_no_sdk_pandas_or_scipy() -> None:
    ours = _probe(
        "import retraining_operator.flows.training as w\n"
        "import retraining_operator.commands.plan\n"
        "uri = w.algorithm_image_uri('object-detection', 'eu-west-1')"
    )
    sdk = _probe(
        "from sagemaker.core import image_uris\n"
        "uri = image_uris.retrieve('object-detection', 'eu-west-1', version='1')"
    )
    print(f"\noperator lookup: {ours}\nsagemaker-core:  {sdk}")

    assert ours["uri"] == sdk["uri"]
    assert ours["heavy"] == []
    assert {"pandas", "scipy", "sagemaker"} <= set(sdk["heavy"])  # type: ignore[call-overload]
    assert isinstance(ours["max_rss_mb"], float)
    assert isinstance(sdk["max_rss_mb"], float)
    assert ours["max_rss_mb"] < sdk["max_rss_mb"] - 50
