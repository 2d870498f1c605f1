"""The workshop notebook's converter, verbatim, as the oracle for manifest/convert.py.

Copied from seed/000_d2239dc6ba7341c3.txt (`convert_a2i_to_augmented_manifest`). The
only changes: it is wrapped in a factory so the class list (the notebook's global
`object_categories`) and the attribute name (the notebook's literal 'a2i-retraining')
are parameters. Everything inside the function body is the notebook's code.
"""
# ruff: noqa: E501, B007, RUF015, UP031

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def make_seed_converter(
    object_categories: Sequence[str], attribute: str = "a2i-retraining"
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    object_categories_dict = {str(i): j for i, j in enumerate(object_categories)}

    # fmt: off
    def convert_a2i_to_augmented_manifest(a2i_output):  # type: ignore[no-untyped-def]
        annotations = []
        confidence = []
        for i, bbox in enumerate(a2i_output['humanAnswers'][0]['answerContent']['annotatedResult']['boundingBoxes']):
            object_class_key = [key for (key, value) in object_categories_dict.items() if value == bbox['label']][0]
            obj = {'class_id': int(object_class_key),
                   'width': bbox['width'],
                   'top': bbox['top'],
                   'height': bbox['height'],
                   'left': bbox['left']}
            annotations.append(obj)
            confidence.append({'confidence': 1})

        # We set "a2i-retraining" as the attribute name for this dataset. This will later be used in setting the training data
        augmented_manifest={'source-ref': a2i_output['inputContent']['taskObject'],
                            attribute: {'annotations': annotations,
                                               'image_size': [{'width': a2i_output['humanAnswers'][0]['answerContent']['annotatedResult']['inputImageProperties']['width'],
                                                               'depth':3,
                                                               'height': a2i_output['humanAnswers'][0]['answerContent']['annotatedResult']['inputImageProperties']['height']}]},
                            attribute + '-metadata': {'job-name': 'a2i/%s' % a2i_output['humanLoopName'],
                                                        'class-map': object_categories_dict,
                                                        'human-annotated':'yes',
                                                        'objects': confidence,
                                                        'creation-date': a2i_output['humanAnswers'][0]['submissionTime'],
                                                        'type':'groundtruth/object-detection'}}
        return augmented_manifest
    # fmt: on

    return convert_a2i_to_augmented_manifest  # type: ignore[no-any-return]
