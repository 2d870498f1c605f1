"""The honest gate's measurements, pure: mAP on held-out images, and how sure we are.

* `boxes.py` — a ground-truth augmented-manifest line and a prediction line (the built-in
  object-detection algorithm's `{"prediction": [[class, score, xmin, ymin, xmax, ymax]]}`)
  read into boxes, bounded and validated.
* `average_precision.py` — COCO-style average precision at IoU 0.5 (101-point interpolation,
  at most 100 detections per image and class, averaged over the classes with ground truth):
  what pycocotools' COCOeval reports with `iouThrs=[0.5]`, to 1e-9 (property-tested
  against it). Detections are matched per image once (`match`); everything after works on
  per-class arrays, which is what makes the bootstrap cheap.
* `bootstrap.py` — the paired bootstrap over images of mAP(candidate) - mAP(serving): the
  same resampled images for both models, a percentile interval at the chosen confidence.
"""
