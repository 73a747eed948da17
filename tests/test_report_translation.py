"""The report's translation block: the verdict in words (paired: the model against each simple
baseline beyond the 95 % intervals and its FID against the floor; unpaired: FID against the
floor and the untranslated inputs, the target-class rate, content preservation, and the case
where the rate alone would call a failure a success) and the strips at full resolution."""

from __future__ import annotations

import re
from html import unescape

from PIL import Image
from report_fakes import make_generation_run, make_translation_run, translation_results

from medsyn.reports import build_report
from medsyn.reports.content.translation import THRESHOLDS, translation_verdict


def _verdict(paired: bool, **changes):
    metrics = translation_results("r", paired=paired)["metrics"]
    metrics.update(changes)
    return translation_verdict(metrics)


def test_paired_verdict_reads_each_baseline_beyond_the_intervals_and_the_floor():
    v = _verdict(True)
    assert v.sentences[0] == (
        "The model beats the input itself on MAE-Y, PSNR-Y and SSIM-Y beyond the 95 % intervals "
        "(MAE-Y 25.50 [23.80, 27.10] vs 133.40 [130.90, 136.20]; PSNR-Y 18.70 [18.30, 19.10] vs "
        "4.88 [4.72, 5.04]; SSIM-Y 0.669 [0.658, 0.680] vs 0.005 [0.004, 0.007]).")
    assert v.levels[0] == "good"
    # SSIM of the mean image overlaps the model's: not beaten, said so
    assert v.sentences[1].startswith("The model beats the mean training image beyond the 95 % "
                                     "intervals on MAE-Y and PSNR-Y, but not on SSIM-Y")
    assert v.levels[1] == "fair"
    assert "Its FID, 274.1 [266.1, 282.1], is lower than that of the input itself" in v.sentences[2]
    assert v.sentences[-1] == ("FID of the outputs is 4.5x the real-vs-real floor (274.1 vs "
                               "61.0, two real halves): far from the real images' distribution.")
    assert v.level == "poor"


def test_paired_verdict_says_when_a_trivial_baseline_wins():
    worse = {"value": 12.0, "ci95": [11.5, 12.5]}
    v = _verdict(True, psnr_y=worse)
    assert any(s.startswith("The model is worse than the mean training image on PSNR-Y beyond "
                            "the 95 % intervals") and s.endswith("a trivial baseline does "
                                                                 "better.")
               for s in v.sentences)
    # no floor: the FID is read against the baselines only, and the verdict says what is missing
    metrics = translation_results("r", paired=True)["metrics"]
    del metrics["real_floor"]
    assert "no real-vs-real floor" in translation_verdict(metrics).sentences[-1]


def test_unpaired_verdict_catches_the_success_the_classifier_alone_would_report():
    v = _verdict(False)
    text = " ".join(v.sentences)
    assert "3.1x the real-vs-real floor (241.2 vs 76.7" in text
    assert ("further from the target domain than the untranslated inputs (FID 241.2 [233.2, "
            "249.2] vs 169.9 [158.2, 181.6]): doing nothing scores better.") in text
    assert "puts 98 % of the translated images in Viral Pneumonia" in text
    assert "Content is not preserved" in text
    assert v.sentences[-1].startswith("The target-class rate alone would call this translation "
                                      "a success; it is not one: its images are further from "
                                      "the target domain than the untranslated inputs and they "
                                      "keep no more of their input than of any other.")
    assert v.level == "poor"


def test_unpaired_verdict_of_a_translation_that_works():
    close = {"value": 90.0, "ci95": [85.0, 95.0]}
    own = {"value": 9.0, "ci95": [8.5, 9.5]}
    v = _verdict(False, fid=close, content_feature_distance=own)
    text = " ".join(v.sentences)
    assert "closer to the target domain than the untranslated inputs" in text
    assert "Content is preserved: each output is closer to its own input" in text
    assert "alone would call" not in text
    # a low rate: the classifier says it failed, no "alone" sentence either
    low = {**translation_results("r", paired=False)["metrics"]["target_class_rate"],
           "value": 0.2, "ci95": [0.1, 0.3]}
    v = _verdict(False, target_class_rate=low)
    assert any("does not reach the target class" in s for s in v.sentences)
    assert not any("alone would call" in s for s in v.sentences)


def test_report_shows_the_verdict_and_full_resolution_strips(tmp_path):
    runs = tmp_path / "runs"
    make_translation_run(runs, "pix2pix-cxr3-edges-64px", paired=True)
    make_translation_run(runs, "cyclegan-normal-to-viral", paired=False)
    make_generation_run(runs, "acgan-cxr3", {2: 150.0})
    result = build_report([runs], tmp_path / "report")
    out, html = result.out_dir, result.index_html.read_text()
    text = unescape(html)
    assert "nan" not in re.sub(r"[a-z]nan|nan[a-z]", "", html.lower())
    # the summary's verdict list holds the translation runs, with the translation rules
    summary = html[html.index('id="summary"'):html.index("</div>", html.index("Verdicts"))]
    assert "pix2pix-cxr3-edges-64px" in summary and "cyclegan-normal-to-viral" in summary
    assert "alone would call this translation a success" in unescape(summary)
    assert THRESHOLDS in text
    # the run page's translation block: verdict and the test strip at full resolution
    assert html.count("Translation: verdict and test strips") == 2
    assert "Test images: input | output | target" in html
    assert "Test images: input | output | reconstruction" in html
    strips = re.findall(r'<img src="([^"]+)" alt="(Test images[^"]*|Last sample strip[^"]*)" '
                        r'class="native" width="(\d+)">', html)
    assert len(strips) == 4                        # 2 test strips + 2 training strips
    for src, _, width in strips:
        own = Image.open(out / src).size[0]
        assert int(width) >= own and int(width) % own == 0       # never shrunk, whole factor
    assert "figure img.native { max-width: none" in html         # the inlined style sheet
    # the examples figure is not repeated among the generic figures
    assert "translation examples" not in html
    # generation runs keep their sample grids as before (enlarged, not marked native)
    assert re.search(r'alt="Last sample grid \(epoch002.png\)" class="pixel"', html)
