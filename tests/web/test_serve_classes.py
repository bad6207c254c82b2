"""The page's class picker: offered only for a class-conditional model, a guided job conditions
every network call on the class, and bad class requests are one-sentence 400s."""

from __future__ import annotations

import pytest
import torch
from test_serve_api import call, finish

from invfussion import models
from invfussion.serve import RestorationService


@pytest.fixture(scope="module")
def class_service():
    """A service on an untrained tiny mnist32 InvFussion with 10 classes, 1 Heun step."""
    net = models.build("mnist32", "invfussion", widths=[32, 64], d_head=16, mapping_width=32, num_classes=10)
    service = RestorationService(net.eval(), steps=1, max_samples=2, model_name="tiny-classes")
    yield service
    service.close()


def test_info_offers_classes_only_for_a_class_conditional_model(server, class_service):
    assert call(server, "/api/info")[1]["num_classes"] == 0
    assert class_service.info()["num_classes"] == 10
    status, answer = call(server, "/api/jobs", {"image": {"digit": 0}, "degradation": "matrix", "class_label": 1})
    assert status == 400 and "not class-conditional" in answer["error"]


def test_a_guided_job_calls_the_network_twice_per_evaluation(class_service):
    job = class_service.submit({"image": {"digit": 3}, "degradation": "matrix", "num_samples": 2,
                                "class_label": 3, "cfg": 2})
    finish(job)
    assert job.total_nfe == job.counter.nfe == 2 * 1 * 2 + 2  # 2 samples × 1 Heun call, the MMSE; ×2
    assert job.result["guidance"] == "class 3, guidance w = 2"
    assert job.result["metrics"]["posterior"]["nfe"] == 2
    plain = class_service.submit({"image": {"digit": 3}, "degradation": "matrix", "num_samples": 2})
    finish(plain)
    assert plain.total_nfe == 3 and plain.result["guidance"] == ""
    assert torch.equal(job.class_labels, torch.tensor([3])) and plain.class_labels is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"class_label": 10}, "class label 10 is not one of this model's classes; pick an integer from 0 to 9"),
    ({"class_label": "3"}, "class label must be an integer"),
    ({"class_label": True}, "class label must be an integer"),
    ({"cfg": 2}, "needs a class label"),
    ({"class_label": 3, "cfg": -1}, "finite number ≥ 0"),
    ({"class_label": 3, "cfg": "2"}, "cfg must be a number"),
])
def test_bad_class_requests_are_refused_before_any_sampling(class_service, extra, message):
    with pytest.raises(ValueError, match=message):
        class_service.submit({"image": {"digit": 0}, "degradation": "matrix", **extra})
