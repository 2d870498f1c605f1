"""`retraining-operator manifest`: A2I outputs -> augmented manifest, offline.

Same converter and writers as the operator's ingest. Every quarantined input is named on
stderr with its path, loop name (when known) and reason; one bad input never stops the
others, and no traceback is ever printed. Exit codes (EXIT_CODES, also in --help):

    0  every input became a manifest line (all written)
    2  some inputs were quarantined; every good line was written
    1  nothing could be done: bad arguments, unreadable input, or no valid input
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from retraining_operator.commands import Subparsers

if TYPE_CHECKING:  # the handler imports these when it runs (--help stays fast)
    from retraining_operator.api import LabelsSpec
    from retraining_operator.flows.offline import OfflineResult, Source
    from retraining_operator.flows.sinks import LineSink

ALL_GOOD = 0
NOTHING_DONE = 1
SOME_QUARANTINED = 2
EXIT_CODES = """exit codes:
  0  every input became a manifest line
  2  some inputs were quarantined (listed on stderr); every good line was written
  1  nothing could be done: bad arguments, unreadable input, or no valid input"""


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "manifest",
        help="convert A2I output.json files into an augmented manifest (offline)",
        description="Read every output.json below --input (a directory or s3://prefix), "
        "convert each to an object-detection augmented-manifest line exactly as the operator "
        "does, and write the valid lines sorted by human loop name to --output (a file or "
        "s3://bucket/key). Quarantined inputs are listed on stderr with their reason.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def usage_error(message: str) -> NoReturn:
        # argparse exits 2 on a usage error; 2 means "some quarantined" here.
        parser.print_usage(sys.stderr)
        parser.exit(NOTHING_DONE, f"{parser.prog}: error: {message}\n")

    parser.error = usage_error  # type: ignore[method-assign]
    parser.add_argument(
        "--input", required=True, help="directory, output.json file, or s3://prefix"
    )
    classes = parser.add_mutually_exclusive_group(required=True)
    classes.add_argument("--classes", help="comma-separated class names (index = class id)")
    classes.add_argument(
        "--classes-file",
        help="file with one class name per line (or a JSON list); index = class id",
    )
    parser.add_argument(
        "--attribute-name",
        default="a2i-retraining",
        help="manifest attribute for the labels (default: a2i-retraining)",
    )
    parser.add_argument("--output", required=True, help="manifest file or s3://bucket/key")
    parser.add_argument(
        "--unknown-label",
        choices=["Quarantine", "Drop"],
        default="Quarantine",
        help="a box with a label not in the classes quarantines the sample (default) or is dropped",
    )
    parser.add_argument(
        "--worker-answer",
        choices=["First", "Latest"],
        default="First",
        help="with several worker answers, use the first (default) or the newest",
    )
    parser.add_argument(
        "--consolidation",
        choices=["First", "Latest", "Consensus"],
        default=None,
        help="how several workers' answers become one label (replaces --worker-answer): "
        "First, Latest, or Consensus (boxes matched by IoU, majority label, mean box; "
        "images the workers disagree on are quarantined WorkersDisagree)",
    )
    parser.add_argument(
        "--iou-threshold",
        type=float,
        default=None,
        help="Consensus: IoU at which two workers' boxes are one object (default 0.5)",
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        help="Consensus: share of workers that must draw a box to keep it (default 0.5)",
    )
    parser.add_argument(
        "--image-prefix",
        action="append",
        default=None,
        metavar="S3_PREFIX",
        help="only accept images (taskObject) below this s3:// bucket or folder; others are "
        "quarantined ForeignImage (repeatable)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="parallel S3 reads (default 16)"
    )
    parser.add_argument("--region", default=None, help="AWS region for S3 (default: from env)")
    parser.set_defaults(handler=_manifest)


def _read_classes(args: argparse.Namespace) -> list[str]:
    import json
    from pathlib import Path

    if args.classes is not None:
        return [name.strip() for name in args.classes.split(",") if name.strip()]
    text = Path(args.classes_file).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        loaded = json.loads(text)
        if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
            raise ValueError(f"{args.classes_file}: a JSON classes file must be a list of strings")
        return loaded
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _consolidation(args: argparse.Namespace) -> dict[str, object] | None:
    """`labels.consolidation` from the options (None: --worker-answer decides)."""
    knobs = {
        "iouThreshold": args.iou_threshold,
        "minAgreement": args.min_agreement,
    }
    chosen = {key: value for key, value in knobs.items() if value is not None}
    if args.consolidation is None and not chosen:
        return None
    mode = args.consolidation or "Consensus"
    if chosen and mode != "Consensus":
        raise ValueError(
            "--iou-threshold and --min-agreement only apply to --consolidation Consensus"
        )
    return {"mode": mode, **chosen}


def _manifest(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except Exception as error:  # the promise: a message and exit 1, never a traceback
        print(
            f"retraining-operator manifest: failed: {type(error).__name__}: {str(error)[:500]}",
            file=sys.stderr,
        )
        return NOTHING_DONE


class _Refused(Exception):
    """Nothing can be done: the message is printed after `retraining-operator manifest: `."""


def _run(args: argparse.Namespace) -> int:
    from retraining_operator.flows import offline

    try:
        labels = _labels(args)
        sources, sink = _sources_and_sink(args)
    except _Refused as refused:
        print(f"retraining-operator manifest: {refused}", file=sys.stderr)
        return NOTHING_DONE
    result = offline.build_manifest(sources, labels, sink, concurrency=args.concurrency)
    return _report(result)


def _labels(args: argparse.Namespace) -> LabelsSpec:
    from pydantic import ValidationError

    from retraining_operator.api import LabelsSpec
    from retraining_operator.api.problems import problem_lines

    try:
        return LabelsSpec(
            classes=_read_classes(args),
            attribute_name=args.attribute_name,
            unknown_label=args.unknown_label,
            worker_answer=args.worker_answer,
            consolidation=_consolidation(args),
            image_s3_prefixes=args.image_prefix,
        )
    except (OSError, ValueError) as error:
        if isinstance(error, ValidationError):
            details = "; ".join(problem_lines(error, prefix="labels"))
            raise _Refused(f"invalid labels: {details}") from None
        raise _Refused(str(error)) from None


def _sources_and_sink(
    args: argparse.Namespace,
) -> tuple[list[Source], Callable[[], LineSink]]:
    """Where the outputs are read (at least one) and the manifest written."""
    from pathlib import Path

    from retraining_operator.flows import offline

    s3 = None
    if args.input.startswith("s3://") or args.output.startswith("s3://"):
        import boto3

        from retraining_operator.aws.s3 import S3
        from retraining_operator.aws.session import AwsSession, ClientSettings

        region = args.region or boto3.Session().region_name or "us-east-1"
        s3 = S3(AwsSession(region, settings=ClientSettings(pool=max(args.concurrency, 1))).s3())
    try:
        if args.input.startswith("s3://"):
            from retraining_operator.aws.s3 import S3Location

            assert s3 is not None
            sources = offline.s3_sources(s3, S3Location.parse(args.input))
        else:
            sources = offline.local_sources(Path(args.input))
        if args.output.startswith("s3://"):
            from retraining_operator.aws.s3 import S3Location

            assert s3 is not None
            sink = offline.s3_sink(s3, S3Location.parse(args.output))
        else:
            sink = offline.file_sink(Path(args.output))
    except (offline.OfflineInputError, ValueError) as error:
        raise _Refused(str(error)) from None
    if not sources:
        raise _Refused(f"no {offline.OUTPUT_NAME} below {args.input}")
    return sources, sink


def _report(result: OfflineResult) -> int:
    """Name every quarantined input and dropped box on stderr; the exit code."""
    for item in result.quarantined:
        print(f"quarantined: {item.describe()}", file=sys.stderr)
    for converted, box in result.dropped:
        print(
            f"dropped box: {converted.source} (loop {converted.loop_name}): boundingBoxes"
            f"[{box.index}] label {box.label!r} is not a known class",
            file=sys.stderr,
        )
    if result.written is None:
        print(
            f"no valid sample in {result.inputs} inputs ({len(result.quarantined)} "
            "quarantined); nothing written",
            file=sys.stderr,
        )
        return NOTHING_DONE
    for line in result.reviewer_lines():
        print(line, file=sys.stderr)
    print(
        f"wrote {result.written.lines} lines to {result.written.uri} from {result.inputs} "
        f"inputs; {len(result.quarantined)} quarantined, {len(result.dropped)} boxes dropped",
        file=sys.stderr,
    )
    return SOME_QUARANTINED if result.quarantined else ALL_GOOD
