"""The compression instrument (embedding error, score-map correlation) and the fits
that aim at the teacher (asymmetric reconstruction)."""
import os

import torch

from siamfc.compression.diagnosis import aligned_error, diagnose, outputs, plot_diagnosis, response_correlation
from siamfc.compression.fit_moments import Moments
from siamfc.compression.squeezes import init_hourglass, output_projection
from siamfc.compression.transitions import carry_over, init_narrowed
from siamfc.models.backbone import FULL_WIDTHS, alexnet_layers
from siamfc.models.fd import FDChain, FDPlan
from siamfc.models.net import SiamNet

ALEX = alexnet_layers(FULL_WIDTHS)


def test_aligned_error_ignores_rotations_and_counts_what_a_narrower_embedding_drops():
    torch.manual_seed(0)
    t = torch.randn(4, 8, 5, 5)
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    rotated = torch.einsum("sc,nchw->nshw", q, t)
    assert aligned_error([rotated], [t]) < 1e-10
    # keep the 4 channels of largest energy: the error is at most the energy of the other 4
    # (a finite sample lets the best map win a little back from their correlation)
    t[:, 4:] *= 0.1
    kept = t[:, :4]
    dropped = float((t[:, 4:] ** 2).sum() / (t ** 2).sum())
    assert 0.8 * dropped < aligned_error([kept], [t]) <= dropped + 1e-9
    assert aligned_error([torch.randn(4, 8, 5, 5)], [t]) > 0.5


def test_response_correlation_is_one_for_an_affine_copy_and_low_for_noise():
    torch.manual_seed(0)
    maps = torch.randn(6, 1, 17, 17)
    assert abs(response_correlation(3 * maps + 1, maps) - 1) < 1e-9
    assert abs(response_correlation(torch.randn(6, 1, 17, 17), maps)) < 0.2


def test_moments_recover_an_exact_linear_map_from_chunks():
    torch.manual_seed(0)
    w, b = torch.randn(5, 3).double(), torch.randn(3).double()
    m = Moments()
    for _ in range(4):
        x = torch.randn(50, 5).double()
        m.add(x, x @ w + b)
    fit, err = m.solve(lam=1e-12)
    assert torch.allclose(fit[:-1], w, atol=1e-6) and torch.allclose(fit[-1], b, atol=1e-6)
    assert err < 1e-9


def _perturbed(teacher: FDChain, plan_step: int) -> FDChain:
    """A step-``plan_step`` network whose conv1 is the teacher's plus noise: an earlier
    step's error that later fits can correct or copy."""
    net = FDChain(FDPlan(ALEX, (0.5,), plan_step))
    carry_over(net, teacher.state_dict())
    with torch.no_grad():
        net.conv1[0].weight.add_(0.3 * net.conv1[0].weight.std() * torch.randn_like(net.conv1[0].weight))
    return net.eval()


def test_fits_aimed_at_the_teacher_correct_earlier_error_that_previous_targets_copy():
    torch.manual_seed(0)
    sample = [torch.rand(6, 3, 127, 127) * 255]
    teacher = FDChain(FDPlan(ALEX, (0.5,), 0)).eval()
    old = _perturbed(teacher, 1)
    init_hourglass(old, old, 1, sample)   # PCA of its own (perturbed) conv1
    errors = {}
    for name, target in (("teacher", teacher), ("previous", None)):
        new = FDChain(FDPlan(ALEX, (0.5,), 2))
        carry_over(new, old.state_dict())
        init_narrowed(new, old, 1, sample, target)
        with torch.no_grad():
            want = teacher.trace(sample[0])["conv2"]
            got = new.eval().trace(sample[0])["conv2"]
        errors[name] = float((got - want).norm() / (want - want.mean()).norm())
    assert errors["teacher"] < 0.8 * errors["previous"]


def test_hourglass_onto_the_teacher_beats_pca_of_the_student_alone():
    torch.manual_seed(1)
    sample = [torch.rand(6, 3, 127, 127) * 255]
    teacher = FDChain(FDPlan(ALEX, (0.5,), 0)).eval()
    residual = {}
    for name, target in (("teacher", teacher), ("previous", None)):
        old = _perturbed(teacher, 0)
        torch.manual_seed(1)
        new = FDChain(FDPlan(ALEX, (0.5,), 1))
        carry_over(new, old.state_dict())
        init_hourglass(new, old, 1, sample, target)
        with torch.no_grad():
            want = teacher.trace(sample[0])["block1"]
            got = new.eval().trace(sample[0])["block1"]
        residual[name] = float((got - want).norm() / want.norm())
    assert residual["teacher"] < residual["previous"]


def test_the_last_projection_is_turned_onto_the_student():
    """The last squeeze keeps the principal subspace of a step-8 network's embedding; the
    distillation target seen through the turned projection is then the student's own."""
    torch.manual_seed(0)
    sample = [torch.rand(4, 3, 127, 127) * 255]
    before = FDChain(FDPlan(ALEX, (0.5,), 8)).eval()   # full-width embedding, the last squeeze to come
    student = FDChain(FDPlan(ALEX, (0.5,), 9))
    carry_over(student, before.state_dict())
    init_hourglass(student, before, 5, sample)
    with torch.no_grad():
        fs, ft = student.eval()(sample[0]), before(sample[0])
        errs = []
        for who in (None, student):
            proj = output_projection(before, sample, student.out_channels, 2, student=who)
            pt = torch.einsum("sc,nchw->nshw", proj, ft)
            errs.append(float((fs - pt).norm() / pt.norm()))
    assert errs[1] < 1e-3 and errs[1] <= errs[0]


def test_diagnosis_of_the_teacher_itself_and_its_plot(tmp_path):
    torch.manual_seed(0)
    net = SiamNet(FDChain(FDPlan(ALEX, (0.5,), 0))).eval()
    pairs = (torch.rand(3, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255)
    reference = outputs(net, pairs)
    same = diagnose(net, reference, pairs)
    assert same["embedding_error"] < 1e-3 and same["response_correlation"] > 0.999
    other = SiamNet(FDChain(FDPlan(ALEX, (0.5,), 0))).eval()
    worse = diagnose(other, reference, pairs)
    assert worse["embedding_error"] > 10 * max(same["embedding_error"], 1e-4)
    assert worse["response_correlation"] < same["response_correlation"]
    phases = [{"name": "step1", "auc": 0.5, "diagnosis": same}, {"name": "finetune1", "auc": 0.4, "diagnosis": worse}]
    path = plot_diagnosis(phases, str(tmp_path / "d.png"), "t")
    assert path and os.path.getsize(path) > 1000
    # phases with one candidate may go untracked (auc None): the plot still draws the diagnosis
    untracked = [{**p, "auc": None} for p in phases]
    assert plot_diagnosis(untracked, str(tmp_path / "u.png"), "t") and os.path.getsize(tmp_path / "u.png") > 1000
    assert plot_diagnosis([{"name": "step1", "auc": 0.5}], str(tmp_path / "e.png"), "t") is None


def test_a_selection_squeeze_keeps_whole_channels_and_their_bn():
    """The selection keeps sC channels, evenly from conv2's two groups; the even step then
    keeps the kept channels' own BN, and the refitted conv2 reproduces the teacher's
    conv2 about as well as the greedy criterion promised."""
    from siamfc.compression.squeezes import init_selection, selected_channels

    torch.manual_seed(0)
    sample = [torch.rand(6, 3, 127, 127) * 255]
    teacher = FDChain(FDPlan(ALEX, (0.5,), 0)).eval()
    odd = FDChain(FDPlan(ALEX, (0.5,), 1))
    carry_over(odd, teacher.state_dict())
    promised = init_selection(odd, teacher, 1, sample, teacher)
    kept = selected_channels(odd.squeeze1)
    assert kept is not None and len(set(kept.tolist())) == 48
    assert (kept < 48).sum() == 24   # conv2's first group reads channels 0-47
    even = FDChain(FDPlan(ALEX, (0.5,), 2))
    carry_over(even, odd.state_dict())
    residual = init_narrowed(even, odd, 1, sample, teacher)
    assert torch.equal(even.conv1[1].running_var, teacher.conv1[1].running_var[kept])
    assert abs(residual - promised) < 0.1 and residual < 0.9
