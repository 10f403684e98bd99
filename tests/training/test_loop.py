"""Training pieces: the least-squares start of the linear path, the rollout curriculum, and
validation that keeps the starting point when training does not beat it."""

import numpy as np
import pytest
import torch

from tests.factories import make_fields, net_spec
from wxmodels.nets import Forecaster
from wxmodels.training.linear_init import init_linear_path
from wxmodels.training.loop import Batches, FitSettings, fit, masked_loss


def _model(f, **net):
    spec = net_spec(f, **{"linear_skip": True, **net})
    torch.manual_seed(0)
    return Forecaster(spec, valid=f.valid)


def _one_step_loss(model, f, inits):
    b = Batches(f, model.history, torch.device("cpu"))
    state, tm, clim, truth = b.get(inits, 1)
    with torch.no_grad():
        pred = model(state, tm, clim)[:, None]
    return float(masked_loss(pred, truth, torch.tensor([3.0, 3.0]), torch.ones(len(f.lat), 1)))


def test_linear_start_is_the_least_squares_fit():
    f = make_fields(nt=200)
    model = _model(f)
    inits = np.arange(2, 150)
    persistence = _one_step_loss(_model(f, linear_skip=False, width=2), f, inits)
    rep = init_linear_path(model, f, inits)
    assert rep["mse_linear"] < 0.5 * rep["mse_base"]
    # the core's output is zero: the model is exactly base + linear path
    head = model.core.head
    assert all(float(p.abs().max()) == 0.0 for p in head.parameters())
    fitted = _one_step_loss(model, f, inits)
    assert fitted < persistence
    # the loss from the fit's own residual (tendency_std units -> std units)
    assert fitted == pytest.approx(rep["mse_linear"] * (0.5 / 3.0) ** 2, rel=0.05)


def test_no_linear_path_is_refused():
    f = make_fields(nt=50)
    with pytest.raises(ValueError, match="linear path"):
        init_linear_path(_model(f, linear_skip=False), f, np.arange(2, 20))


def test_training_that_never_helps_keeps_the_start():
    """With a learning rate far too high every epoch is worse than the least-squares start:
    the fit returns the start (best_epoch -1) rather than the least bad epoch."""
    f = make_fields(nt=200)
    model = _model(f)
    tr, va = np.arange(2, 120), np.arange(130, 180)
    init_linear_path(model, f, tr)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    rep = fit(model, f, tr, va, FitSettings(epochs=2, lr=50.0, batch_size=32), seed=0)
    assert rep.best_epoch == -1
    for k, v in model.state_dict().items():
        assert torch.equal(v, start[k]), k
    assert rep.best_val <= min(rep.val_loss)


def test_rollout_curriculum_grows_to_the_longest_lead():
    f = make_fields(nt=200)
    model = _model(f)
    tr, va = np.arange(2, 120), np.arange(130, 170)
    settings = FitSettings(
        epochs=1,
        rollout_epochs=3,
        rollout_steps=2,
        rollout_max_steps=8,
        batch_size=32,
        samples_per_epoch=32,
        patience=10,
    )
    rep = fit(model, f, tr, va, settings, seed=0)
    assert rep.phase == ["one-step", "rollout", "rollout", "rollout"]
    assert rep.steps == [1, 2, 5, 8]


def test_ensemble_step_is_the_mean_of_its_members():
    from wxmodels.nets.forecaster import ensemble, member

    f = make_fields(nt=60)
    spec_net = {"climatology": False}
    members = []
    for k in range(3):
        torch.manual_seed(k)
        members.append(_model(f, **spec_net))
    ens = ensemble(members)
    assert ens.members == 3 and ens.spec.net["members"] == 3
    b = Batches(f, 2, torch.device("cpu"))
    state, tm, clim, _ = b.get(np.arange(5, 9), 1)
    with torch.no_grad():
        mean = torch.stack([m(state, tm, clim) for m in members]).mean(0)
        got = ens(state, tm, clim)
    ok = torch.isfinite(mean)
    # the clipping at zero acts on the mean (none of these variables is non-negative)
    torch.testing.assert_close(got[ok], mean[ok], rtol=1e-5, atol=1e-4)
    # a member taken back out is that member
    with torch.no_grad():
        torch.testing.assert_close(
            member(ens, 1).core(torch.ones(1, ens.skip.in_channels, 8, 12)),
            members[1].core(torch.ones(1, ens.skip.in_channels, 8, 12)),
        )


def test_fit_settings_come_from_the_train_config_in_one_place():
    from wxmodels.config.model import TrainConfig

    train = TrainConfig(epochs=7, lr=3e-3, weight_decay=1e-3, patience=1, loss_norm="tendency")
    s = FitSettings.from_train(train)
    assert (s.epochs, s.lr, s.weight_decay, s.patience, s.loss_norm) == (
        7,
        3e-3,
        1e-3,
        1,
        "tendency",
    )
    ft = s.finetune(epochs=2, max_minutes=0.5)
    assert (ft.epochs, ft.lr, ft.weight_decay, ft.patience, ft.max_minutes) == (
        2,
        1e-3,
        0.0,
        2,
        0.5,
    )
    assert ft.rollout_steps == train.rollout_steps and ft.rollout_max_steps is None
