"""Published values of Fong & Vedaldi 2017, from /work/shared/PAPERS.md section 1.

Table 1 values come from the official ``localization.ipynb`` saved outputs ([nb-out]): the authors' own runs,
marked confirmed=False because the paper body itself was not read. Nothing here is invented.
"""

from lightning_modules.reporting import PaperValue

T1 = "Table 1 (official localization.ipynb outputs)"
T1_SETTING = "GoogLeNet, ILSVRC'12 val, alpha tuned on 5k held-out train images"

#: localisation error (fraction) per method and threshold type, and the tuned alphas
TABLE1_ERROR = {
    "value": {"gradient": 0.4604, "guided_backprop": 0.5019, "excitation_backprop": 0.4609, "gradcam": 0.5303,
              "occlusion": 0.5115, "mask": 0.4402},
    "energy": {"gradient": 0.4391, "guided_backprop": 0.4697, "excitation_backprop": 0.3871, "gradcam": 0.5388,
               "occlusion": 0.4939, "mask": 0.4315},
    "mean": {"gradient": 0.4166, "guided_backprop": 0.4199, "excitation_backprop": 0.3898, "gradcam": 0.5331,
             "occlusion": 0.4858, "mask": 0.4324},
}
TABLE1_ALPHA = {
    "value": {"gradient": 0.25, "guided_backprop": 0.05, "excitation_backprop": 0.15, "gradcam": 0.35,
              "occlusion": 0.30, "mask": 0.10},
    "energy": {"gradient": 0.10, "guided_backprop": 0.30, "excitation_backprop": 0.60, "gradcam": 0.65,
               "occlusion": 0.55, "mask": 0.95},
    "mean": {"gradient": 5.0, "guided_backprop": 4.5, "excitation_backprop": 1.5, "gradcam": 1.5,
             "occlusion": 1.0, "mask": 0.5},
}


def table1(threshold: str, method: str) -> PaperValue | None:
    v = TABLE1_ERROR.get(threshold, {}).get(method)
    return None if v is None else PaperValue(v, T1, f"{T1_SETTING}; {threshold} threshold", confirmed=False)


def table1_alpha(threshold: str, method: str) -> PaperValue | None:
    v = TABLE1_ALPHA.get(threshold, {}).get(method)
    return None if v is None else PaperValue(v, T1, f"{T1_SETTING}; {threshold} threshold alpha*", confirmed=False)


#: animal parts (mask value at eyes / feet, lower = more salient), per class [nb-out]
ANIMAL_PARTS = {
    "hamster": (0.0672, 0.3038), "indigo bunting": (0.0747, 0.2935), "chickadee": (0.1134, 0.4138),
    "jacamar": (0.1339, 0.2629), "bison": (0.3329, 0.3559),
}
ANIMAL_PARTS_SOURCE = "Sec. 5 animal parts (official animal_parts.ipynb outputs)"
ANIMAL_PARTS_SETTING = "GoogLeNet deletion masks, 3,558 ImageNet images with Oxford animal-parts keypoints"
EYES_MORE_SALIENT = PaperValue("eyes consistently more salient than feet", ANIMAL_PARTS_SOURCE, ANIMAL_PARTS_SETTING,
                               confirmed=False)
HAMSTER_EYES = PaperValue(0.0672, ANIMAL_PARTS_SOURCE, "hamster (66 images): mean mask value at the eyes", confirmed=False)
HAMSTER_FEET = PaperValue(0.3038, ANIMAL_PARTS_SOURCE, "hamster (66 images): mean mask value at the feet", confirmed=False)

#: pointing game: the gradient value on VOC07 (the paper's Table 2 itself was not read)
POINTING_GRADIENT_VOC = PaperValue(0.670, "official pointing_game.ipynb outputs", "GoogLeNet, VOC07 test, gradient, mean per-class accuracy",
                                   confirmed=False)
#: TorchRay's pointing table (Fong, Patrick & Vedaldi 2019 benchmark; centre baseline), COCO VGG16 all / difficult
POINTING_CENTER_COCO = (PaperValue(0.278, "TorchRay docs/pointing.csv", "COCO val2014 centre baseline, all"),
                        PaperValue(0.195, "TorchRay docs/pointing.csv", "COCO val2014 centre baseline, difficult"))

ARTIFACTS = PaperValue("unregularised masks are tiny, adversarial and do not transfer; TV + upsampling + jitter remove them",
                       "Sec. 4 / Fig. 3 (artifacts)", "GoogLeNet, ImageNet", confirmed=False)
GENERALISATION = PaperValue("blur-learned masks, simplified, suppress the score under constant, noise and blur",
                            "Sec. 4 (Fig. 5/6: mask generalisation)", "GoogLeNet, ImageNet", confirmed=False)
SMALLEST_BOX = PaperValue("mask gives the smallest suppressing boxes", "Sec. 5 (deletion game figure)",
                          "GoogLeNet, ImageNet val", confirmed=False)
ADVERSARIAL = PaperValue("mask heatmaps separate clean from adversarial images best", "Sec. 5 adversarial defence",
                         "AlexNet on heatmaps, I-FGSM; numbers not read", confirmed=False)
LABEL_RECOVERY = PaperValue("deletion masks applied to adversarial images recover the original label",
                            "Sec. 5 adversarial defence", "numbers not read", confirmed=False)


#: our method name -> the row of the paper's tables (Fong's occlusion baseline is the blurred circle)
PAPER_KEY = {"blurred_circle_occlusion": "occlusion"}
