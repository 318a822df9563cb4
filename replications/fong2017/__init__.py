"""Fong & Vedaldi 2017, "Interpretable Explanations of Black Boxes by Meaningful Perturbation" (ICCV 2017)."""

PAPER = {
    "title": "Interpretable Explanations of Black Boxes by Meaningful Perturbation",
    "citation": "R. C. Fong and A. Vedaldi. Interpretable Explanations of Black Boxes by Meaningful Perturbation. ICCV 2017.",
    "experiments": [
        "a_artifacts", "b_generalisation", "c_weak_localisation", "d_smallest_box", "e_adversarial_detection",
        "f_label_recovery", "g_keypoints", "h_pointing_game", "benchmark",
    ],
}
