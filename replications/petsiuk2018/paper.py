"""Published numbers of Petsiuk, Das & Saenko 2018 (RISE), from /work/shared/PAPERS.md sections 1 and 2.

Table 1 (deletion / insertion AUC, ImageNet val, ResNet50) was recalled from memory by the brief's author and is
not confirmed against the paper text; the official notebook's RISE run (Evaluation.ipynb, ResNet50, 10,000 val
images, step 1792 px) is confirmed from its saved outputs. The pointing-game numbers are TorchRay's re-run
(Fong, Patrick & Vedaldi 2019, docs/pointing.csv), not the RISE paper's Table 2 (which was not read).
"""

from lightning_modules.reporting import PaperValue

_T1 = "RISE Table 1"
_T1_SETTING = "ResNet50, ImageNet val, deletion substrate = mean colour, insertion from blur"

#: Table 1, ResNet50 row: deletion AUC (lower is better), unconfirmed.
DELETION_RESNET50 = {
    "gradcam": PaperValue(0.1232, _T1, _T1_SETTING, confirmed=False),
    "occlusion": PaperValue(0.1421, _T1, _T1_SETTING + " (sliding window)", confirmed=False),
    "lime": PaperValue(0.1217, _T1, _T1_SETTING, confirmed=False),
    "rise": PaperValue(0.1076, _T1, _T1_SETTING, confirmed=False),
}
#: Table 1, ResNet50 row: insertion AUC (higher is better), unconfirmed.
INSERTION_RESNET50 = {
    "gradcam": PaperValue(0.6766, _T1, _T1_SETTING, confirmed=False),
    "occlusion": PaperValue(0.6618, _T1, _T1_SETTING + " (sliding window)", confirmed=False),
    "lime": PaperValue(0.6940, _T1, _T1_SETTING, confirmed=False),
    "rise": PaperValue(0.7267, _T1, _T1_SETTING, confirmed=False),
}

_NB = "official Evaluation.ipynb (saved outputs)"
_NB_SETTING = "ResNet50, first 10,000 ImageNet val images, 1792 px per step"
#: The authors' own notebook run of RISE (confirmed from the notebook's outputs).
NOTEBOOK_RISE = {
    "deletion": PaperValue(0.1048, _NB, _NB_SETTING, confirmed=True),
    "insertion": PaperValue(0.7719, _NB, _NB_SETTING, confirmed=True),
}

#: Method hyperparameters (PAPERS.md section 2).
RISE_TORCHRAY = {"n_masks": 8000, "grid_size": 7, "p": 0.5}
RISE_PAPER_TEXT = {"n_masks": 4000, "grid_size": 7, "p": 0.5}  # unconfirmed
PIXELS_PER_STEP_AT_224 = 224 * 8
INSERTION_BLUR = {"kernel": 11, "sigma": 5.0}
POINTING_TOLERANCE_AT_224 = 15

_TR = "TorchRay docs/pointing.csv"


def _pg(value: float, setting: str) -> PaperValue:
    return PaperValue(value, _TR, setting, confirmed=True)


#: Pointing game (%), TorchRay re-run: {dataset/model: {method: (all, difficult)}}.
POINTING_TORCHRAY = {
    "VOC07 VGG16": {"center": (69.6, 42.4), "gradient": (76.3, 56.9), "rise": (86.9, 75.1), "gradcam": (86.6, 74.0)},
    "VOC07 ResNet50": {"center": (69.6, 42.4), "gradient": (72.3, 56.8), "rise": (86.4, 78.8), "gradcam": (90.4, 82.3)},
    "COCO VGG16": {"center": (27.8, 19.5), "gradient": (37.7, 31.4), "rise": (50.8, 45.3), "gradcam": (54.2, 49.0)},
    "COCO ResNet50": {"center": (27.8, 19.5), "gradient": (35.0, 29.4), "rise": (54.7, 50.0), "gradcam": (57.3, 52.3)},
}


def pointing_value(setting: str, method: str, subset: str) -> PaperValue:
    all_, diff = POINTING_TORCHRAY[setting][method]
    return _pg(all_ if subset == "all" else diff, f"{setting}, {subset}")


#: Tolerance for the paper profile's value claims (absolute AUC): the Table 1 values are unconfirmed and our
#: LIME / sliding-window settings are not the paper's exact ones.
PAPER_AUC_ATOL = 0.03
